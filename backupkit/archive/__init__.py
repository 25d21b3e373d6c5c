"""The archive: its names and framing, the manifest, the member policy, writer and reader."""
