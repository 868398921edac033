"""OAuth connections: an integration's token obtained by a person clicking *Connect* (the
authorization-code flow with PKCE), kept in the vault, refreshed before it expires, and its health
shown. See docs/oauth.md."""
