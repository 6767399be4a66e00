"""The sans-IO SIP endpoint: bytes and time in, events and bytes out.

CONTRACT STUB — to be implemented by the transaction work (keep these names and signatures).

    ep = SipEndpoint(local=("udp", "127.0.0.1", 5060))
    ep.receive_datagram(data, source, now)      # source: Target
    ep.receive_stream(conn_key, data, now)       # TCP bytes; framing by Content-Length
    while (event := ep.next_event()) is not None: ...
    for data, target in ep.datagrams_to_send(): transport.send(data, target)
    deadline = ep.get_timer()                    # absolute time or None
    ep.handle_timer(now)
    txn = ep.send_request(request, target, now)  # client transaction (Via/branch added)
    ep.send_response(server_txn, response, now)  # through its server transaction
    ep.send_stateless(message, target)           # ACK of a 2xx, stateless replies
"""
