"""``python -m cloud_connector``."""

from cloud_connector.cli import main

main()
