"""Check an archive: the streaming pass, the database checks, the comparison, the verdict."""
