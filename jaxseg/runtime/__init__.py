"""The process around the model: devices and the data-parallel mesh, several processes, numeric precision,
the memory allocator, atomic file writes, optional dependencies and fault points for resilience tests."""
