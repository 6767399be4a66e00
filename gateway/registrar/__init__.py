"""Registrar for employees' phones (RFC 3261 §10): digest-authenticated REGISTER, bindings, expiry."""

from gateway.registrar.bindings import Binding, BindingStore
from gateway.registrar.service import Registrar

__all__ = ["Binding", "BindingStore", "Registrar"]
