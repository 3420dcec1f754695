"""
The peers txvaurien is measured against, from Debian: haproxy 2.6 in
C{mode tcp}, socat, and nginx as a real HTTP backend.  Each is started as
a child process on an ephemeral port of 127.0.0.1, with its configuration
generated into a temporary directory.

haproxy runs one thread (C{nbthread 1}), in the foreground (C{-db}), so
that it is one single-threaded event loop like txvaurien; nginx runs one
worker without a master (C{master_process off}), so that its process is
the one that serves and the CPU read from C{/proc} is its own.
"""

from __future__ import annotations

import os

from _common import binary

HAPROXY_CONFIG = """\
global
    maxconn 9000
    nbthread 1

defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout client-fin 120s
    timeout server-fin 120s

listen bench
    bind 127.0.0.1:{port}
    server backend {backend}
"""

NGINX_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        location / {{ }}
    }}
}}
"""

#: The static file nginx serves (C{GET /index.html}).
NGINX_BODY = b"Hello, world!\n" * 8


def haproxyCommand(directory: str, name: str, port: int, backend: str) -> list[str]:
    """
    Write a C{mode tcp} haproxy configuration listening on
    127.0.0.1:C{port} and forwarding to C{backend} (C{host:port}) into
    C{directory}, and return the command that runs it in the foreground.
    """
    path = os.path.join(directory, name + ".haproxy.cfg")
    with open(path, "w") as f:
        f.write(HAPROXY_CONFIG.format(port=port, backend=backend))
    return [binary("haproxy", "haproxy"), "-db", "-f", path]


def socatCommand(port: int, backendPort: int) -> list[str]:
    """
    The socat command that forwards 127.0.0.1:C{port} to
    127.0.0.1:C{backendPort}, one forked child per connection.
    """
    return [binary("socat", "socat"),
            "TCP-LISTEN:{},bind=127.0.0.1,fork,reuseaddr".format(port),
            "TCP:127.0.0.1:{}".format(backendPort)]


def nginxCommand(directory: str, port: int) -> list[str]:
    """
    Write an nginx configuration (one worker, no master, no access log)
    serving L{NGINX_BODY} as C{/index.html} on 127.0.0.1:C{port} into
    C{directory}, and return the command that runs it in the foreground.
    """
    www = os.path.join(directory, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "wb") as f:
        f.write(NGINX_BODY)
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as f:
        f.write(NGINX_CONFIG.format(dir=directory, port=port))
    return [binary("nginx", "nginx-light"), "-p", directory, "-c", path]
