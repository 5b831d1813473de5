"""OONI's published measurements into blockmon's store: files, OONI's API, the import itself."""
