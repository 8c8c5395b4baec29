"""Industrial protocol codecs, one folder per protocol; ``registry.PROTOCOLS`` lists them."""
