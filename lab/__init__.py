"""The lab: an offline test network with honest and lying DNS, web sites, a test CA and middleboxes."""
