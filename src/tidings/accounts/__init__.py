"""People, projects, roles, sessions: who may do what. ``authorize`` decides every access."""

from .principal import SITE, AccessError, CsrfRefused, Forbidden, Principal, Unauthenticated, allowed, authorize
from .roles import PERMISSIONS, ROLES

__all__ = ["PERMISSIONS", "ROLES", "SITE", "AccessError", "CsrfRefused", "Forbidden", "Principal", "Unauthenticated", "allowed",
           "authorize"]
