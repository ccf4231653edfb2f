"""The OAuth 2.0 authorization server for partner NOCs, one module per endpoint."""
