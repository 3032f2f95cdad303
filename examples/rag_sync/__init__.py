"""A RAG identity sync driven by the gateway's provisioning hooks (see README.md)."""
