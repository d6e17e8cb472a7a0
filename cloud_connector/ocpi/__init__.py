"""OCPI 2.2.1, CPO side: transport, versions and credentials, and the functional modules."""
