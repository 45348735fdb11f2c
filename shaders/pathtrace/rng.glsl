// rng.glsl: the path tracer's random numbers, a pure function of (seed, frame, pixel, sample),
// so that tiles and passes do not change the image.
// Samples: Owen-scrambled Sobol pairs for the pixel, the lens, the light and the BSDF (one
// pattern per bounce: sobol2), a PCG stream for the rest (Russian roulette: rnd). The
// dielectric's reflect / refract choice takes its BSDF pair's first number.

// PCG hash (Jarzynski & Olano 2020) of a counter.
uint pcg(uint v) {
  uint state = v * 747796405u + 2891336453u;
  uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
uint rng;
float rnd() {
  rng = pcg(rng);
  return float(rng >> 8) * (1.0 / 16777216.0);
}

// Stratified 2D samples: Owen-scrambled Sobol (0,2)-sequence with a shuffled index
// (Burley 2020, "Practical Hash-based Owen Scrambling"). One independent pattern per dimension
// pair (pixel, lens, light and BSDF per bounce), seeded from the pixel's hash.
uint owen(uint x, uint seed) {  // nested uniform scramble of the bits of x, top bit first
  x = bitfieldReverse(x);
  x += seed;
  x ^= x * 0x6c50b47cu;
  x ^= x * 0xb82f1e52u;
  x ^= x * 0xc7afe638u;
  x ^= x * 0x8d22f6e6u;
  return bitfieldReverse(x);
}
// Sobol's second dimension (direction numbers v_k = v_{k-1} ^ v_{k-1} >> 1, v_0 = 2^31), bit
// reversed: bit j of the result is the parity of the bits k of i with j a subset of k (the
// direction matrix is Pascal's triangle mod 2; Lucas), a superset-sum over the five index bits in
// five shift-xor steps instead of a loop over the 32 bits of i.
uint sobol1_rev(uint i) {
  i ^= (i >> 1) & 0x55555555u;
  i ^= (i >> 2) & 0x33333333u;
  i ^= (i >> 4) & 0x0f0f0f0fu;
  i ^= (i >> 8) & 0x00ff00ffu;
  i ^= (i >> 16) & 0x0000ffffu;
  return i;
}
uint owen_rev(uint xr, uint seed) {  // owen(bitfieldReverse(xr), seed), without the two reversals
  xr += seed;
  xr ^= xr * 0x6c50b47cu;
  xr ^= xr * 0xb82f1e52u;
  xr ^= xr * 0xc7afe638u;
  xr ^= xr * 0x8d22f6e6u;
  return bitfieldReverse(xr);
}
uint pixel_seed;
uint sample_index;
vec2 sobol2(uint dim) {
  uint seed = pcg(pixel_seed + dim * 0x9e3779b9u);
  uint i = owen(sample_index, pcg(seed ^ 0xa511e9b3u));
  uint x = owen_rev(i, pcg(seed ^ 0x63d83595u));              // Sobol dimension 0: i reversed
  uint y = owen_rev(sobol1_rev(i), pcg(seed ^ 0x8f3a1c2du));  // dimension 1
  return vec2(float(x >> 8), float(y >> 8)) * (1.0 / 16777216.0);
}

// Sobol dimension pairs: the pixel, the lens, then the light and the BSDF of each bounce.
const uint DIM_PIXEL = 0u, DIM_LENS = 1u;
uint dim_light(uint depth) { return 2u + 3u * depth; }
uint dim_bsdf(uint depth) { return 3u + 3u * depth; }

// Starts sample index si of pixel `pixel` of frame `frame` under seed `seed`.
void rng_start(uint seed, uint frame, uint pixel, uint si) {
  sample_index = si;
  pixel_seed = pcg(seed ^ pcg(frame ^ pcg(pixel)));
  rng = pcg(pixel_seed ^ pcg(sample_index));
}
