"""Webhooks: where a hook may send (`guard`), what it is sent (`payload`), and the task that
delivers it from every server process (`delivery`)."""
