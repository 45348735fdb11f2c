#version 450
// empty: does nothing. The round-trip latency benchmark dispatches it (one workgroup), so what is
// measured is submission and completion, not shader work. No bindings, no push constants.
layout(local_size_x = 1) in;

void main() {}
