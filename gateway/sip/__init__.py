"""Sans-IO SIP core (RFC 3261): no sockets, no event loop, no clock; time is an argument."""
