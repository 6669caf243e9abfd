"""The servers of an engine group: leases of ports, devices and CPU slots, replicas and their supervisor,
the server as it is now."""
