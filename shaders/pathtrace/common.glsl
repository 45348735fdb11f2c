// common.glsl: constants and small geometry helpers shared by the other includes.

const float PI = 3.14159265358979;
const float EPS = 1e-4;  // ray offset, relative to max(1, distance from the origin)

// Orthonormal basis around unit n (Duff et al. 2017).
void basis(vec3 n, out vec3 t, out vec3 b) {
  float s = n.z >= 0.0 ? 1.0 : -1.0;
  float a = -1.0 / (s + n.z), c = n.x * n.y * a;
  t = vec3(1.0 + s * n.x * n.x * a, s * c, -s * n.x);
  b = vec3(c, s + n.y * n.y * a, -n.y);
}

// Latitude-longitude coordinates of a unit direction (x: u in [0, 1], y: polar angle / pi from +y,
// i.e. image rows top to bottom). u = 0.5 looks towards -x, 0.75 towards -z, 0.25 towards +z:
// Blender's equirectangular mapping with Blender's +Z as +y and Blender's +Y as -z.
vec2 latlong(vec3 d) {
  return vec2(0.5 + atan(-d.z, -d.x) * (0.5 / PI), acos(clamp(d.y, -1.0, 1.0)) / PI);
}

float power_heuristic(float a, float b) {  // Veach 1997
  float a2 = a * a;
  return a2 / (a2 + b * b);
}
