"""The demo service, its traffic and its report (``obskit demo``)."""
