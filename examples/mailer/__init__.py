"""Send an e-mail over SMTP, once per task even when a worker dies mid-send."""
