"""SMTP fixtures: real aiosmtpd servers on port 0 with recording and misbehaving handlers."""
