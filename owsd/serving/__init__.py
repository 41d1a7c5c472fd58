"""The cloud over HTTP: an Open Inference Protocol codec, a reference server, and `RemoteCloud`, its client."""
