"""
The control plane: an HTTP server that drives running proxies.

One port serves two APIs whose paths do not collide:

  - Vaurien's (C{/behavior}, C{/behaviors}, C{/backend}), acting on the
    default proxy (the one C{--backend} describes), plus C{/connections};
  - Toxiproxy's (C{/proxies}, C{/populate}, C{/reset}, C{/version},
    C{/metrics}), so Toxiproxy clients in any language work unchanged.

Modules:

  - L{txvaurien.control.manager}: the named proxies and their toxics;
  - L{txvaurien.control.toxics}: Toxiproxy toxics as configured behaviors;
  - L{txvaurien.control.config}: Toxiproxy-style JSON proxy lists
    (C{--config proxies.json}, C{POST /populate});
  - L{txvaurien.control.jsonio}: JSON in and out, the way each API spells it;
  - L{txvaurien.control.resource}: HTTP plumbing (routing, token, browser
    guard, body limit);
  - L{txvaurien.control.toxiproxy_api}, L{txvaurien.control.vaurien_api}:
    the endpoints;
  - L{txvaurien.control.metrics}: Prometheus metrics;
  - L{txvaurien.control.server}: the service that listens.
"""
