"""Telephony-first voice gateway: SIP B2BUA with CRM linking."""
