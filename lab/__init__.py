"""The lab: an offline test network with honest and lying DNS, web sites, a test CA and middleboxes."""

from lab.control import LabControlError, send_policy, send_vantage_shaping
from lab.firewall import FirewallUnavailable
from lab.network import Lab, LabError, LabInfo
from lab.pages import BLOCKPAGE_PHRASE
from lab.policies import DEFAULT_CATALOGUE, LAB_ZONE, POLICIES, bulk_hostname

__all__ = [
    "BLOCKPAGE_PHRASE",
    "DEFAULT_CATALOGUE",
    "LAB_ZONE",
    "POLICIES",
    "FirewallUnavailable",
    "Lab",
    "LabControlError",
    "LabError",
    "LabInfo",
    "bulk_hostname",
    "send_policy",
    "send_vantage_shaping",
]
