"""Access: users, roles, tokens, provider scoping and the audit trail. May import `cldx.store`."""
