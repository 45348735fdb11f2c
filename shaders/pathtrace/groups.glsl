// groups.glsl: which cell of its tile a workgroup renders. Pure functions of their arguments (no
// bindings), so that tests/render compiles this file alone to check it.
//
// llvmpipe (Mesa 22) splits a dispatch's workgroups into one contiguous run per thread, in
// workgroup order, and the dispatch ends with its slowest run. In tile order one thread would
// get the top of the tile and another the bottom (the sky to one, the floor and the objects to
// the other). Spread, workgroup w of n takes the cell w * s mod n, s near n / golden ratio and
// coprime with n (so a permutation of the cells), and every run covers the whole tile. Pixels
// do not depend on which workgroup renders them: the image is the same either way.

uint gcd(uint a, uint b) {
  while (b != 0u) {
    uint t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// The cell (x, y) of workgroup id among groups (x, y), spread. From 65536 cells on w * s could
// wrap: the workgroup's own cell then.
uvec2 spread_cell(uvec2 id, uvec2 groups) {
  uint n = groups.x * groups.y;
  if (n >= 65536u) return id;
  uint s = max(uint(float(n) * 0.618034), 1u);
  while (gcd(s, n) != 1u) s++;
  uint c = ((id.y * groups.x + id.x) * s) % n;
  return uvec2(c % groups.x, c / groups.x);
}
