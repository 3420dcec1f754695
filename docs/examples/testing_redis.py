"""
pytest + redis-py: the retry logic of a cache read, under txvaurien's
error behavior.  Needs a redis-server (REDIS_ADDRESS, default
127.0.0.1:6379).  Run it with: pytest testing_redis.py
"""

import os

import pytest
import redis

REDIS = os.environ.get("REDIS_ADDRESS", "127.0.0.1:6379")


def read(client, key, attempts=10):
    """The code under test: retry a read that fails with an error reply."""
    for attempt in range(attempts):
        try:
            return client.get(key)
        except redis.ResponseError:
            if attempt == attempts - 1:
                raise


def test_readRetriesThroughErrors(chaos_proxy):
    proxy = chaos_proxy(REDIS, protocol="redis", seed=1)
    client = redis.Redis(host=proxy.host, port=proxy.port)
    client.set("greeting", "hello")
    # 30% of the requests get "-ERR ...": the reads still succeed.
    with proxy.behavior("error", toxicity=0.3):
        assert [read(client, "greeting") for _ in range(20)] == [b"hello"] * 20
    client.close()


def test_readGivesUpWhenEveryRequestFails(chaos_proxy):
    proxy = chaos_proxy(REDIS, protocol="redis", seed=1)
    client = redis.Redis(host=proxy.host, port=proxy.port)
    with proxy.behavior("error"):
        with pytest.raises(redis.ResponseError):
            read(client, "greeting")
    client.close()
