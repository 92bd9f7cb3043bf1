"""gRPC server options: `--grpc_channel_arguments` over rnnzoo-serve's bounded defaults.

`--grpc_channel_arguments` takes TF Serving's syntax, comma-separated ``key=value`` pairs (e.g.
``grpc.max_receive_message_length=67108864,grpc.max_concurrent_streams=100``); integer values
become ints, others stay strings. TF Serving receives messages of any size (INT_MAX); here the
receive limit defaults to `DEFAULT_MAX_RECEIVE_BYTES`, so one call cannot make the server buffer
gigabytes before it is even decoded. ``grpc.max_receive_message_length=-1`` restores TF Serving's
behaviour.
"""

DEFAULT_MAX_RECEIVE_BYTES = 128 * 2**20  # a float32 request at --max_request_elements, twice over
DEFAULTS = {"grpc.max_receive_message_length": DEFAULT_MAX_RECEIVE_BYTES, "grpc.max_send_message_length": -1}


def _value(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def grpc_server_options(channel_arguments: str) -> list:
    """[(key, value)] for `grpc.aio.server(options=...)`: the defaults, overridden by the flag."""
    options = dict(DEFAULTS)
    for item in filter(None, (part.strip() for part in channel_arguments.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"--grpc_channel_arguments entry {item!r} is not key=value; pass comma-separated pairs such as "
                f"grpc.max_receive_message_length=67108864"
            )
        options[key.strip()] = _value(value.strip())
    return list(options.items())
