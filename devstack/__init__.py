"""The development harness: start nats-server, SeaweedFS and the five services on loopback (`make run`,
`make serve`, the integration and end-to-end tests). Not part of the runtime image (deploy/docker copies
videobg/, services/ and vbg/ only)."""
