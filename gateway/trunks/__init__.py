"""Trunks (SPEC T1): SIP providers that deliver rented numbers and customers' own PBXs, how the gateway
trusts them, registers to them, and reaches the outside world through them (R4)."""
