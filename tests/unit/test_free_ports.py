"""`free_ports`: one distinct port a name, each free when chosen (a port picked and closed
one at a time may be handed out again: two services given one port, one fails to start)."""

from __future__ import annotations

import socket

from gridloop.embedded import free_ports


def test_every_name_gets_a_port_of_its_own_that_can_be_listened_on() -> None:
    names = [f"GRIDLOOP_S{n}_PORT" for n in range(200)]
    ports = free_ports(names)
    assert list(ports) == names
    assert len(set(ports.values())) == len(names)
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(ports[names[0]])))  # released once chosen
