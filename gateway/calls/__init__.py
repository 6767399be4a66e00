"""Live calls meet the CRM: the routing directory, the async router and the call journal.

The one package that holds both halves' state at run time: it reads the database (storage, the CRM
bridge) on behalf of the B2BUA, which never awaits, and hands answers back through a `post` callable
(`SipRuntime.run_in_sip`). Nothing here decides a rule: routing decides where, the linking engine what.
"""
