"""fbstampli: FreshBooks bills and vendors into Stampli's SFTP inbound, Stampli's exports back."""

__version__ = "0.1.0"
