/* gltf.cpp: glTF 2.0 (.gltf with external or data: buffers, .glb) into the scene builder.
 *
 * tinygltf (Debian's libtinygltf-dev, header-only, with nlohmann json) parses the file into a
 * Model: JSON, base64 data URIs, GLB chunks and external buffers. Everything after that is kiln's:
 * tinygltf parses but neither bounds-checks accessors against their buffers nor applies sparse
 * accessors, so every accessor, buffer view, index and node reference is checked here before it is
 * read, and each failure is a located error: the file, the JSON path ("meshes[2].primitives[0].
 * mode") and, for a .gltf, the line and column of that value (kiln__json_locate on the JSON text).
 * A few things tinygltf would read without checking (an image's buffer view, an external buffer's
 * file and length, the GLB header) are checked on the raw JSON and bytes before it sees them.
 *
 * Images are not decoded by tinygltf: its image callback keeps the encoded bytes, and each is
 * decoded by kiln__texture_decode (PNG / JPEG, the same checked decoders and size limits as any
 * texture) once per use (sRGB for colours, linear for data). External images are read by kiln.
 *
 * Conventions: glTF is +Y up, metres, right-handed, counter-clockwise front faces; so is kiln, so
 * positions go through unchanged. glTF's texture v grows down the image (v = 0 is the top row),
 * kiln's up (v = 1 is the top row): every uv is flipped (v' = 1 - v), and KHR_texture_transform's
 * matrix is conjugated by that flip.
 *
 * C++ stays inside this file: kiln__gltf_add catches every exception (std::bad_alloc is
 * KILN_ENOMEM); errors inside are thrown as Fail and turned into a kiln__gltf_error there. */
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream> /* tiny_gltf.h uses it without including it */
#include <map>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>

#define TINYGLTF_IMPLEMENTATION
#define TINYGLTF_NO_STB_IMAGE
#define TINYGLTF_NO_STB_IMAGE_WRITE
#define TINYGLTF_NO_EXTERNAL_IMAGE
#define TINYGLTF_NO_FS
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <tiny_gltf.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

extern "C" {
#include "kiln/error.h"
#include "scene_internal.h"
}

namespace {

using tinygltf::Model;
using json = nlohmann::json;

/* How a Blender light's watts become kiln's radiant intensity (kiln__plight.color of a point or
 * spot light), as docs/SCENE.md "Lights" defines it and Cycles renders it: W / (4 pi), so that a
 * glTF light of I candela is I / 683 W/sr. */
constexpr double PI = 3.14159265358979323846;
constexpr double KILN_GLTF_WATTS_TO_INTENSITY = 1.0 / (4.0 * PI);
/* Blender's importer (io_scene_gltf2, PBR_WATTS_TO_LUMENS): lm per W. */
constexpr double PBR_WATTS_TO_LUMENS = 683.0;
/* An accessor without a buffer view is zeros (plus its sparse values): at most this many
 * elements, so that a few bytes of JSON cannot ask for gigabytes. */
constexpr size_t MAX_UNBACKED_ELEMENTS = size_t(1) << 24;
/* JSON nesting deeper than this is refused before tinygltf sees it: it copies `extras` and
 * `extensions` recursively, so a file of nested brackets could exhaust the stack. glTF itself
 * nests a few levels (materials[0].pbrMetallicRoughness.baseColorTexture.extensions...). */
constexpr int MAX_JSON_DEPTH = 64;

/* The deepest nesting of arrays and objects in JSON text s (brackets inside strings skipped). */
int json_depth(const std::string &s) {
  int d = 0, max = 0;
  bool str = false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (str) {
      if (c == '\\') i++;
      else if (c == '"') str = false;
    } else if (c == '"') {
      str = true;
    } else if (c == '[' || c == '{') {
      max = ++d > max ? d : max;
    } else if (c == ']' || c == '}') {
      d--;
    }
  }
  return max;
}

/* The extensions kiln reads; a file that requires another is refused. */
const char *const SUPPORTED[] = {"KHR_lights_punctual", "KHR_texture_transform",
                                 "KHR_materials_emissive_strength", "KHR_materials_ior",
                                 "KHR_mesh_quantization"};

/* An error at a JSON path of the glTF (or, with file, in a file it names). */
struct Fail {
  int code;
  std::string path, message, file;
};

[[noreturn]] void fail(const std::string &path, const std::string &msg) {
  throw Fail{KILN_EPARSE, path, msg, ""};
}

std::string at(const std::string &base, const char *key) { return base + "." + key; }
std::string at(const std::string &base, size_t i) { return base + "[" + std::to_string(i) + "]"; }
std::string at(const char *base, size_t i) { return at(std::string(base), i); }

bool is_supported(const std::string &ext) {
  for (const char *s : SUPPORTED)
    if (ext == s) return true;
  return false;
}

/* %XX escapes of a URI decoded (glTF URIs are percent-encoded). */
std::string uri_decode(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += char(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool is_data_uri(const std::string &s) { return s.compare(0, 5, "data:") == 0; }

/* ---- matrices: column vectors, row-major storage as kiln__xform ----------------------------- */

kiln__xform identity() {
  kiln__xform x;
  kiln__xform_identity(&x);
  return x;
}

kiln__xform mul(const kiln__xform &a, const kiln__xform &b) {
  kiln__xform r;
  kiln__xform_mul(&r, &a, &b);
  return r;
}

void xdir(const kiln__xform &x, const double v[3], double out[3]) {
  for (int i = 0; i < 3; i++) out[i] = x.m[i][0] * v[0] + x.m[i][1] * v[1] + x.m[i][2] * v[2];
}

bool normalize(double v[3]) {
  double l = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  if (!(l > 1e-30) || !std::isfinite(l)) return false;
  for (int i = 0; i < 3; i++) v[i] /= l;
  return true;
}

/* ---- the load ------------------------------------------------------------------------------- */

struct Loader {
  kiln__scene_builder *b;
  const kiln__gltf_opts *o;
  std::string file, dir; /* dir: the file's folder with its '/', or "" */
  Model m;
  std::string json_text; /* the JSON (a .glb's JSON chunk) for kiln__json_locate */
  bool binary = false;

  /* per glTF mesh, decoded once: a triangle soup in mesh space */
  struct Soup {
    bool done = false;
    std::vector<float> pos, nrm, uv, col, tan;
    std::vector<uint32_t> mat; /* glTF material index, or materials.size() for the default */
    bool any_nrm = false, any_uv = false, any_col = false, any_tan = false;
    float lo[3], hi[3];
  };
  std::vector<Soup> soups;
  std::vector<int64_t> scene_mat; /* per glTF material (+1 default): scene index or -1 */
  std::map<std::pair<int, int>, int32_t> tex_cache;      /* (image, mode) -> scene texture */
  std::map<int, std::pair<int32_t, int32_t>> base_cache; /* image -> (sRGB, alpha or -1) */

  void warn(const std::string &path, const std::string &msg) {
    int rc = path.empty() ? kiln__sb_warn(b, "%s: %s", file.c_str(), msg.c_str())
                          : kiln__sb_warn(b, "%s: %s: %s", file.c_str(), path.c_str(), msg.c_str());
    if (rc) throw std::bad_alloc();
  }

  /* ---- before tinygltf: the GLB container and what tinygltf would read unchecked ---------- */

  void check_glb(const unsigned char *d, size_t n) {
    auto u32 = [&](size_t off) {
      return uint32_t(d[off]) | uint32_t(d[off + 1]) << 8 | uint32_t(d[off + 2]) << 16 |
             uint32_t(d[off + 3]) << 24;
    };
    if (n < 20) fail("", "truncated .glb: " + std::to_string(n) + " bytes, less than its header");
    if (u32(4) != 2) fail("", "unsupported .glb version " + std::to_string(u32(4)) + " (2 only)");
    uint64_t total = u32(8);
    if (total != n)
      fail("", (total > n ? "truncated .glb: its header says "
                          : ".glb length mismatch: its header says ") +
                   std::to_string(total) + " bytes, the file has " + std::to_string(n));
    uint64_t jlen = u32(12);
    if (u32(16) != 0x4E4F534Au) fail("", "the .glb's first chunk is not JSON");
    if (20 + jlen > n)
      fail("", "truncated .glb: its JSON chunk says " + std::to_string(jlen) +
                   " bytes, past the end of the file");
    json_text.assign(reinterpret_cast<const char *>(d) + 20, size_t(jlen));
    uint64_t next = 20 + ((jlen + 3) & ~uint64_t(3));
    if (next + 8 <= n) {
      uint64_t blen = u32(size_t(next));
      if (u32(size_t(next) + 4) == 0x004E4942u && next + 8 + blen > n)
        fail("", "truncated .glb: its BIN chunk says " + std::to_string(blen) +
                     " bytes, past the end of the file");
    }
  }

  /* Buffers (external files must exist and have byteLength bytes; a GLB's BIN chunk must hold
   * the first) and images in buffer views, on the raw JSON: tinygltf's own messages for these
   * name no index, and it reads an image's buffer view without checking it. */
  void precheck(const json &j, uint64_t bin_size) {
    if (!j.is_object()) fail("", "a glTF must be a JSON object");
    auto arr = [&](const char *k) -> const json * {
      auto it = j.find(k);
      if (it == j.end()) return nullptr;
      if (!it->is_array()) fail(k, std::string(k) + " must be an array");
      return &*it;
    };
    std::vector<uint64_t> blen;
    if (const json *bufs = arr("buffers"))
      for (size_t i = 0; i < bufs->size(); i++) {
        const json &bj = (*bufs)[i];
        std::string p = at("buffers", i);
        if (!bj.is_object()) fail(p, "a buffer must be an object");
        auto bl = bj.find("byteLength");
        if (bl == bj.end() || !bl->is_number_unsigned())
          fail(at(p, "byteLength"), "byteLength must be an integer >= 1");
        uint64_t len = bl->get<uint64_t>();
        blen.push_back(len);
        auto uri = bj.find("uri");
        if (uri == bj.end()) {
          if (!binary || i != 0)
            fail(at(p, "uri"), "missing buffer: no uri (only a .glb's first buffer may omit it)");
          if (len > bin_size)
            fail(at(p, "byteLength"), "byteLength is " + std::to_string(len) +
                                          " bytes, the .glb's BIN chunk has " +
                                          std::to_string(bin_size));
          continue;
        }
        if (!uri->is_string()) fail(at(p, "uri"), "uri must be a string");
        std::string u = uri->get<std::string>();
        if (is_data_uri(u)) {
          size_t comma = u.find(";base64,");
          if (comma == std::string::npos)
            fail(at(p, "uri"), "a data: URI must be base64 (';base64,')");
          size_t n = u.size() - comma - 8, pad = 0;
          while (pad < 2 && n > pad && u[u.size() - 1 - pad] == '=') pad++;
          uint64_t got = n / 4 * 3 - (n % 4 == 0 ? pad : 0) + (n % 4 ? (n % 4) * 3 / 4 : 0);
          if (got != len)
            fail(at(p, "byteLength"), "byteLength is " + std::to_string(len) +
                                          " bytes, the data: URI holds " + std::to_string(got));
          continue;
        }
        std::string f = dir + uri_decode(u);
        struct stat st;
        if (stat(f.c_str(), &st) != 0)
          fail(at(p, "uri"), "missing buffer: cannot open '" + f + "': " + std::strerror(errno));
        if (!S_ISREG(st.st_mode)) fail(at(p, "uri"), "missing buffer: '" + f + "' is not a file");
        if (uint64_t(st.st_size) != len)
          fail(at(p, "byteLength"), "byteLength is " + std::to_string(len) + " bytes, '" + f +
                                        "' has " + std::to_string(uint64_t(st.st_size)));
      }
    const json *views = arr("bufferViews");
    if (const json *imgs = arr("images"))
      for (size_t i = 0; i < imgs->size(); i++) {
        const json &ij = (*imgs)[i];
        if (!ij.is_object()) fail(at("images", i), "an image must be an object");
        auto bv = ij.find("bufferView");
        if (bv == ij.end()) continue;
        std::string p = at(at("images", i), "bufferView");
        if (!bv->is_number_unsigned() || !views || bv->get<uint64_t>() >= views->size())
          fail(p, "no such buffer view");
        const json &vj = (*views)[bv->get<size_t>()];
        auto num = [&](const char *k, uint64_t def) -> uint64_t {
          auto it = vj.is_object() ? vj.find(k) : vj.end();
          if (!vj.is_object() || it == vj.end()) return def;
          return it->is_number_unsigned() ? it->get<uint64_t>() : UINT64_MAX;
        };
        uint64_t buf = num("buffer", UINT64_MAX), off = num("byteOffset", 0),
                 len = num("byteLength", UINT64_MAX);
        if (buf >= blen.size() || off > blen[buf] || len > blen[buf] - off)
          fail(p, "the image's buffer view lies outside its buffer");
      }
  }

  /* ---- parsing -------------------------------------------------------------------------- */

  static bool keep_image(tinygltf::Image *img, const int, std::string *, std::string *, int, int,
                         const unsigned char *bytes, int size, void *) {
    img->image.assign(bytes, bytes + size);
    return true;
  }
  static bool fs_exists(const std::string &p, void *user) {
    /* only the file's own folder: tinygltf would also try the process's current folder */
    const std::string &d = *static_cast<const std::string *>(user);
    struct stat st;
    return p.compare(0, d.size(), d) == 0 && stat(p.c_str(), &st) == 0;
  }
  static std::string fs_expand(const std::string &p, void *) { return p; }
  static bool fs_read(std::vector<unsigned char> *out, std::string *err, const std::string &p,
                      void *) {
    char *buf, msg[256];
    size_t len;
    int rc = kiln__read_file(p.c_str(), &buf, &len, msg, sizeof msg);
    if (rc == KILN_ENOMEM) throw std::bad_alloc();
    if (rc) {
      if (err) *err = msg;
      return false;
    }
    try {
      out->assign(buf, buf + len);
    } catch (...) {
      free(buf);
      throw;
    }
    free(buf);
    return true;
  }

  void parse() {
    char *buf, msg[256];
    size_t len;
    int rc = kiln__read_file(file.c_str(), &buf, &len, msg, sizeof msg);
    if (rc) throw Fail{rc, "", msg, ""};
    std::vector<unsigned char> bytes(buf, buf + len);
    free(buf);
    binary = len >= 4 && std::memcmp(bytes.data(), "glTF", 4) == 0;
    uint64_t bin_size = 0;
    if (binary) {
      check_glb(bytes.data(), len);
      uint64_t jlen = json_text.size(), next = 20 + ((jlen + 3) & ~uint64_t(3));
      if (next + 8 <= len) {
        const unsigned char *c = bytes.data() + next;
        if (c[4] == 'B' && c[5] == 'I' && c[6] == 'N' && c[7] == 0)
          bin_size =
              uint32_t(c[0]) | uint32_t(c[1]) << 8 | uint32_t(c[2]) << 16 | uint32_t(c[3]) << 24;
      }
    } else {
      json_text.assign(bytes.begin(), bytes.end());
    }
    if (len > UINT32_MAX) fail("", "the file is larger than 4 GiB");
    if (json_depth(json_text) > MAX_JSON_DEPTH)
      fail("", "the JSON nests deeper than " + std::to_string(MAX_JSON_DEPTH) + " levels");
    json j = json::parse(json_text, nullptr, false);
    if (j.is_discarded()) fail("", "malformed JSON");
    precheck(j, bin_size);
    j = json();
    tinygltf::TinyGLTF t;
    t.SetImageLoader(keep_image, nullptr);
    t.SetFsCallbacks(tinygltf::FsCallbacks{fs_exists, fs_expand, fs_read, nullptr, &dir});
    std::string err, w;
    bool ok = binary ? t.LoadBinaryFromMemory(&m, &err, &w, bytes.data(), unsigned(len), dir)
                     : t.LoadASCIIFromString(&m, &err, &w, json_text.c_str(), unsigned(len), dir);
    if (!ok) {
      while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
      for (char &c : err)
        if (c == '\n') c = ';';
      fail("", "malformed glTF: " + (err.empty() ? std::string("rejected by the parser") : err));
    }
  }

  void check_extensions() {
    for (size_t i = 0; i < m.extensionsRequired.size(); i++)
      if (!is_supported(m.extensionsRequired[i]))
        fail(at("extensionsRequired", i), "the file requires extension '" +
                                              m.extensionsRequired[i] +
                                              "', which kiln does not support");
    for (size_t i = 0; i < m.extensionsUsed.size(); i++)
      if (!is_supported(m.extensionsUsed[i]))
        warn(at("extensionsUsed", i), "extension '" + m.extensionsUsed[i] + "' is ignored");
  }

  /* ---- accessors ------------------------------------------------------------------------- */

  static int ncomp(int type) {
    switch (type) {
      case TINYGLTF_TYPE_SCALAR: return 1;
      case TINYGLTF_TYPE_VEC2: return 2;
      case TINYGLTF_TYPE_VEC3: return 3;
      case TINYGLTF_TYPE_VEC4: return 4;
      default: return 0;
    }
  }
  static int csize(int ct) {
    switch (ct) {
      case TINYGLTF_COMPONENT_TYPE_BYTE:
      case TINYGLTF_COMPONENT_TYPE_UNSIGNED_BYTE: return 1;
      case TINYGLTF_COMPONENT_TYPE_SHORT:
      case TINYGLTF_COMPONENT_TYPE_UNSIGNED_SHORT: return 2;
      case TINYGLTF_COMPONENT_TYPE_UNSIGNED_INT:
      case TINYGLTF_COMPONENT_TYPE_FLOAT: return 4;
      default: return 0;
    }
  }

  /* One component at p as a float (normalized integers to [0, 1] / [-1, 1]). */
  static double component(const unsigned char *p, int ct, bool norm) {
    switch (ct) {
      case TINYGLTF_COMPONENT_TYPE_BYTE: {
        int8_t v;
        std::memcpy(&v, p, 1);
        return norm ? std::fmax(v / 127.0, -1.0) : v;
      }
      case TINYGLTF_COMPONENT_TYPE_UNSIGNED_BYTE: return norm ? p[0] / 255.0 : p[0];
      case TINYGLTF_COMPONENT_TYPE_SHORT: {
        int16_t v;
        std::memcpy(&v, p, 2);
        return norm ? std::fmax(v / 32767.0, -1.0) : v;
      }
      case TINYGLTF_COMPONENT_TYPE_UNSIGNED_SHORT: {
        uint16_t v;
        std::memcpy(&v, p, 2);
        return norm ? v / 65535.0 : v;
      }
      case TINYGLTF_COMPONENT_TYPE_UNSIGNED_INT: {
        uint32_t v;
        std::memcpy(&v, p, 4);
        return v;
      }
      default: {
        float v;
        std::memcpy(&v, p, 4);
        return v;
      }
    }
  }

  /* The bytes of buffer view vi for `count` elements of `elem` bytes from byte offset `off` with
   * stride (0: packed); *stride_out the effective stride. */
  const unsigned char *view_bytes(int vi, size_t off, size_t count, size_t elem, bool use_stride,
                                  const std::string &path, size_t *stride_out) {
    if (vi < 0 || size_t(vi) >= m.bufferViews.size())
      fail(path, "no buffer view " + std::to_string(vi));
    const tinygltf::BufferView &v = m.bufferViews[size_t(vi)];
    std::string vp = at("bufferViews", size_t(vi));
    if (v.buffer < 0 || size_t(v.buffer) >= m.buffers.size())
      fail(at(vp, "buffer"), "missing buffer: no buffer " + std::to_string(v.buffer));
    const std::vector<unsigned char> &data = m.buffers[size_t(v.buffer)].data;
    if (v.byteOffset > data.size() || v.byteLength > data.size() - v.byteOffset)
      fail(vp, "the buffer view (bytes " + std::to_string(v.byteOffset) + " + " +
                   std::to_string(v.byteLength) + ") lies past the end of buffers[" +
                   std::to_string(v.buffer) + "] (" + std::to_string(data.size()) + " bytes)");
    size_t stride = use_stride && v.byteStride ? v.byteStride : elem;
    if (stride < elem)
      fail(at(vp, "byteStride"), "byteStride " + std::to_string(stride) +
                                     " is less than an element's " + std::to_string(elem) +
                                     " bytes");
    /* off + stride * (count - 1) + elem <= byteLength, without overflow */
    uint64_t need = count ? uint64_t(stride) * (count - 1) + elem : 0;
    if (count && (count - 1 > (UINT64_MAX - elem) / stride || off > v.byteLength ||
                  need > v.byteLength - off))
      fail(path, std::to_string(count) + " elements of " + std::to_string(elem) +
                     " bytes (stride " + std::to_string(stride) + ") from byte " +
                     std::to_string(off) + " go past the end of its buffer view (" +
                     std::to_string(v.byteLength) + " bytes)");
    *stride_out = stride;
    return data.data() + v.byteOffset + off;
  }

  /* Accessor ai as `count x ncomp` doubles, sparse values applied. types: allowed accessor
   * types (bit per TINYGLTF_TYPE_ value's component count); what: for messages. */
  std::vector<double> read_accessor(int ai, const std::string &ref, const char *what,
                                    unsigned comps_ok, int *ncomp_out) {
    if (ai < 0 || size_t(ai) >= m.accessors.size())
      fail(ref, std::string(what) + ": no accessor " + std::to_string(ai));
    const tinygltf::Accessor &a = m.accessors[size_t(ai)];
    std::string p = at("accessors", size_t(ai));
    int nc = ncomp(a.type), cs = csize(a.componentType);
    if (!nc || !(comps_ok & (1u << nc)))
      fail(at(p, "type"), std::string(what) + ": this accessor type is not allowed here");
    if (!cs)
      fail(at(p, "componentType"), "unknown componentType " + std::to_string(a.componentType));
    size_t elem = size_t(nc) * size_t(cs), n = a.count;
    std::vector<double> out;
    if (a.bufferView >= 0) {
      size_t stride;
      const unsigned char *src =
          view_bytes(a.bufferView, a.byteOffset, n, elem, true, at(p, "bufferView"), &stride);
      if (stride % size_t(cs))
        fail(p, "the buffer view's byteStride is not a multiple of the component size");
      out.resize(n * size_t(nc));
      for (size_t i = 0; i < n; i++)
        for (int c = 0; c < nc; c++)
          out[i * size_t(nc) + size_t(c)] =
              component(src + i * stride + size_t(c * cs), a.componentType, a.normalized);
    } else {
      if (n > MAX_UNBACKED_ELEMENTS)
        fail(at(p, "count"), "an accessor without a buffer view may have at most " +
                                 std::to_string(MAX_UNBACKED_ELEMENTS) + " elements");
      out.assign(n * size_t(nc), 0.0);
    }
    if (a.sparse.isSparse) apply_sparse(a, p, nc, cs, out);
    *ncomp_out = nc;
    return out;
  }

  void apply_sparse(const tinygltf::Accessor &a, const std::string &p, int nc, int cs,
                    std::vector<double> &out) {
    std::string sp = at(p, "sparse");
    if (a.sparse.count < 1 || size_t(a.sparse.count) > a.count)
      fail(at(sp, "count"), "sparse count must be in [1, the accessor's count]");
    size_t k = size_t(a.sparse.count), istride, vstride;
    int ict = a.sparse.indices.componentType, ics = csize(ict);
    if (ict != TINYGLTF_COMPONENT_TYPE_UNSIGNED_BYTE &&
        ict != TINYGLTF_COMPONENT_TYPE_UNSIGNED_SHORT &&
        ict != TINYGLTF_COMPONENT_TYPE_UNSIGNED_INT)
      fail(at(at(sp, "indices"), "componentType"), "sparse indices must be unsigned integers");
    if (a.sparse.indices.byteOffset < 0 || a.sparse.values.byteOffset < 0)
      fail(sp, "a sparse byteOffset is negative");
    const unsigned char *idx =
        view_bytes(a.sparse.indices.bufferView, size_t(a.sparse.indices.byteOffset), k, size_t(ics),
                   false, at(at(sp, "indices"), "bufferView"), &istride);
    const unsigned char *val =
        view_bytes(a.sparse.values.bufferView, size_t(a.sparse.values.byteOffset), k,
                   size_t(nc * cs), false, at(at(sp, "values"), "bufferView"), &vstride);
    for (size_t i = 0; i < k; i++) {
      double t = component(idx + i * istride, ict, false);
      if (t >= double(a.count))
        fail(at(sp, "indices"), "sparse index " + std::to_string(uint64_t(t)) + " is past the " +
                                    std::to_string(a.count) + " elements of the accessor");
      for (int c = 0; c < nc; c++)
        out[size_t(t) * size_t(nc) + size_t(c)] =
            component(val + i * vstride + size_t(c * cs), a.componentType, a.normalized);
    }
  }

  /* ---- meshes ---------------------------------------------------------------------------- */

  static int attr(const tinygltf::Primitive &pr, const char *name) {
    auto it = pr.attributes.find(name);
    return it == pr.attributes.end() ? -1 : it->second;
  }

  void decode_mesh(size_t mi) {
    Soup &s = soups[mi];
    if (s.done) return;
    const tinygltf::Mesh &me = m.meshes[mi];
    std::string mp = at("meshes", mi);
    if (!me.weights.empty()) warn(at(mp, "weights"), "morph targets are ignored");
    for (size_t pi = 0; pi < me.primitives.size(); pi++)
      decode_primitive(s, me.primitives[pi], at(at(mp, "primitives"), pi));
    for (int i = 0; i < 3; i++) s.lo[i] = s.hi[i] = 0;
    for (size_t i = 0; i < s.pos.size(); i++) {
      float v = s.pos[i];
      if (i < 3 || v < s.lo[i % 3]) s.lo[i % 3] = v;
      if (i < 3 || v > s.hi[i % 3]) s.hi[i % 3] = v;
    }
    s.done = true;
  }

  void decode_primitive(Soup &s, const tinygltf::Primitive &pr, const std::string &pp) {
    static const char *const mode_names[] = {"POINTS",      "LINES",     "LINE_LOOP",
                                             "LINE_STRIP",  "TRIANGLES", "TRIANGLE_STRIP",
                                             "TRIANGLE_FAN"};
    if (pr.mode != TINYGLTF_MODE_TRIANGLES)
      fail(at(pp, "mode"),
           "mode " + std::to_string(pr.mode) +
               (pr.mode >= 0 && pr.mode <= 6 ? std::string(" (") + mode_names[pr.mode] + ")"
                                             : std::string()) +
               ": kiln reads triangles (mode 4) only");
    if (!pr.targets.empty()) warn(at(pp, "targets"), "morph targets are ignored");
    std::string ap = at(pp, "attributes");
    int pa = attr(pr, "POSITION");
    if (pa < 0) fail(ap, "a primitive needs a POSITION attribute");
    int nc;
    std::vector<double> pos = read_accessor(pa, at(ap, "POSITION"), "POSITION", 1u << 3, &nc);
    size_t nv = pos.size() / 3;
    for (double v : pos)
      if (!std::isfinite(v) || std::fabs(v) > 1e30)
        fail(at(ap, "POSITION"), "a position is not finite");
    auto optional = [&](const char *name, unsigned ok, std::vector<double> &out, int &k) {
      int ai = attr(pr, name);
      if (ai < 0) return false;
      out = read_accessor(ai, at(ap, name), name, ok, &k);
      if (out.size() / size_t(k) != nv)
        fail(at(ap, name), std::string(name) + " has " + std::to_string(out.size() / size_t(k)) +
                               " elements, POSITION " + std::to_string(nv));
      return true;
    };
    std::vector<double> nrm, uv, col, tan;
    int kn = 3, ku = 2, kc = 3, kt = 4;
    bool hn = optional("NORMAL", 1u << 3, nrm, kn), hu = optional("TEXCOORD_0", 1u << 2, uv, ku),
         hc = optional("COLOR_0", 1u << 3 | 1u << 4, col, kc),
         ht = optional("TANGENT", 1u << 4, tan, kt);
    for (const auto &kv : pr.attributes)
      if (kv.first == "TEXCOORD_1") warn(at(ap, "TEXCOORD_1"), "only TEXCOORD_0 is read");
      else if (kv.first == "JOINTS_0" || kv.first == "WEIGHTS_0")
        warn(at(ap, kv.first.c_str()), "skinning is ignored (the mesh is drawn in its bind pose)");
    if (hc && kc == 4) {
      for (size_t i = 0; i < nv; i++)
        if (col[4 * i + 3] < 1.0) {
          warn(at(ap, "COLOR_0"), "vertex colour alpha is ignored");
          break;
        }
    }
    /* the triangles' vertex indices */
    std::vector<uint32_t> idx;
    if (pr.indices >= 0) {
      int ik;
      std::string ip = at(pp, "indices");
      if (size_t(pr.indices) < m.accessors.size()) {
        const tinygltf::Accessor &ia = m.accessors[size_t(pr.indices)];
        if (ia.componentType != TINYGLTF_COMPONENT_TYPE_UNSIGNED_BYTE &&
            ia.componentType != TINYGLTF_COMPONENT_TYPE_UNSIGNED_SHORT &&
            ia.componentType != TINYGLTF_COMPONENT_TYPE_UNSIGNED_INT)
          fail(at(at("accessors", size_t(pr.indices)), "componentType"),
               "indices must be unsigned integers");
      }
      std::vector<double> iv = read_accessor(pr.indices, ip, "indices", 1u << 1, &ik);
      idx.resize(iv.size());
      for (size_t i = 0; i < iv.size(); i++) {
        if (iv[i] >= double(nv))
          fail(ip, "index " + std::to_string(uint64_t(iv[i])) + " (element " + std::to_string(i) +
                       ") is past the " + std::to_string(nv) + " vertices");
        idx[i] = uint32_t(iv[i]);
      }
    } else {
      idx.resize(nv);
      for (size_t i = 0; i < nv; i++) idx[i] = uint32_t(i);
    }
    if (idx.size() % 3)
      fail(pr.indices >= 0 ? at(pp, "indices") : at(ap, "POSITION"),
           std::to_string(idx.size()) + " vertices are not a whole number of triangles");
    uint32_t mat = pr.material >= 0 ? uint32_t(pr.material) : uint32_t(m.materials.size());
    if (pr.material >= 0 && size_t(pr.material) >= m.materials.size())
      fail(at(pp, "material"), "no material " + std::to_string(pr.material));
    size_t t0 = s.mat.size(), nt = idx.size() / 3;
    /* once one primitive of the mesh has an attribute, every triangle has one (defaults for
     * the others: geometric normal, uv 0, white, no tangent) */
    auto grow = [&](std::vector<float> &v, bool &any, bool has, size_t per, float fill) {
      if (has && !any) v.assign(t0 * per, fill), any = true;
      if (any) v.resize((t0 + nt) * per, fill);
    };
    bool had_nrm = s.any_nrm;
    s.pos.resize((t0 + nt) * 9);
    grow(s.nrm, s.any_nrm, hn, 9, 0.0f);
    grow(s.uv, s.any_uv, hu, 6, 0.0f);
    grow(s.col, s.any_col, hc, 9, 1.0f);
    grow(s.tan, s.any_tan, ht, 12, 0.0f);
    s.mat.resize(t0 + nt, mat);
    for (size_t t = 0; t < nt; t++) {
      size_t T = t0 + t;
      for (int k = 0; k < 3; k++) {
        size_t v = idx[3 * t + size_t(k)];
        for (int c = 0; c < 3; c++)
          s.pos[9 * T + 3 * size_t(k) + size_t(c)] = float(pos[3 * v + size_t(c)]);
        if (hn)
          for (int c = 0; c < 3; c++)
            s.nrm[9 * T + 3 * size_t(k) + size_t(c)] = float(nrm[3 * v + size_t(c)]);
        if (hu) {
          s.uv[6 * T + 2 * size_t(k)] = float(uv[2 * v]);
          s.uv[6 * T + 2 * size_t(k) + 1] = float(1.0 - uv[2 * v + 1]); /* glTF v down, kiln up */
        }
        if (hc) /* glTF's colours are in [0, 1]; rounding in a float file is clamped */
          for (int c = 0; c < 3; c++)
            s.col[9 * T + 3 * size_t(k) + size_t(c)] =
                float(std::fmin(std::fmax(col[size_t(kc) * v + size_t(c)], 0.0), 1.0));
        if (ht) {
          float *o4 = &s.tan[12 * T + 4 * size_t(k)];
          for (int c = 0; c < 3; c++) o4[c] = float(tan[4 * v + size_t(c)]);
          o4[3] = tan[4 * v + 3] < 0 ? -1.0f : 1.0f; /* the bitangent's sign, +-1 */
        }
      }
    }
    /* triangles without normals once the mesh has some (this primitive's, or the earlier ones'
     * when this is the first with normals) get their geometric normal */
    size_t f0 = hn ? 0 : t0, f1 = hn ? (had_nrm ? 0 : t0) : (s.any_nrm ? t0 + nt : t0);
    for (size_t T = f0; T < f1; T++) {
      float g[3];
      kiln__tri_normal(&s.pos[9 * T], g);
      for (int k = 0; k < 3; k++) std::memcpy(&s.nrm[9 * T + 3 * size_t(k)], g, sizeof g);
    }
    if (hn)
      for (double v : nrm)
        if (!std::isfinite(v)) fail(at(ap, "NORMAL"), "a normal is not finite");
    if (hu || hc || ht)
      for (const std::vector<double> *a : {&uv, &col, &tan})
        for (double v : *a)
          if (!std::isfinite(v)) fail(ap, "an attribute value is not finite");
  }

  /* ---- textures and materials ----------------------------------------------------------- */

  /* The encoded bytes of image ii (read from its file when external): *src names it. */
  std::vector<unsigned char> image_bytes(int ii, std::string *src, const std::string &ref) {
    if (ii < 0 || size_t(ii) >= m.images.size()) fail(ref, "no image " + std::to_string(ii));
    const tinygltf::Image &im = m.images[size_t(ii)];
    if (!im.image.empty() || im.uri.empty() || is_data_uri(im.uri)) {
      *src = file;
      return im.image;
    }
    *src = dir + uri_decode(im.uri);
    char *buf, msg[256];
    size_t len;
    int rc = kiln__read_file(src->c_str(), &buf, &len, msg, sizeof msg);
    if (rc) throw Fail{rc, at(at("images", size_t(ii)), "uri"), msg, *src};
    std::vector<unsigned char> v;
    try {
      v.assign(buf, buf + len);
    } catch (...) {
      free(buf);
      throw;
    }
    free(buf);
    return v;
  }

  /* The image of texture ti (at path ref); -1 with a warning when it has none kiln reads. */
  int texture_image(int ti, const std::string &ref) {
    if (ti < 0 || size_t(ti) >= m.textures.size()) fail(ref, "no texture " + std::to_string(ti));
    const tinygltf::Texture &tx = m.textures[size_t(ti)];
    std::string tp = at("textures", size_t(ti));
    if (tx.source < 0) {
      warn(tp, "no image kiln can read (only PNG and JPEG 'source' images): texture ignored");
      return -1;
    }
    if (tx.sampler >= 0) {
      if (size_t(tx.sampler) >= m.samplers.size())
        fail(at(tp, "sampler"), "no sampler " + std::to_string(tx.sampler));
      const tinygltf::Sampler &sm = m.samplers[size_t(tx.sampler)];
      if (sm.wrapS != TINYGLTF_TEXTURE_WRAP_REPEAT || sm.wrapT != TINYGLTF_TEXTURE_WRAP_REPEAT)
        warn(at("samplers", size_t(tx.sampler)),
             "wrap modes other than REPEAT are drawn as REPEAT");
    }
    return tx.source;
  }

  int32_t add_texture(kiln__texture *t) {
    uint32_t idx;
    if (kiln__sb_texture(b, t, &idx)) {
      free(t->rgb);
      throw std::bad_alloc();
    }
    return int32_t(idx);
  }

  void decode(int ii, kiln__tex_mode mode, kiln__texture *t, kiln__texture *alpha) {
    std::string src, ip = at("images", size_t(ii));
    std::vector<unsigned char> bytes = image_bytes(ii, &src, ip);
    char msg[256] = "";
    int rc = kiln__texture_decode(bytes.data(), bytes.size(), mode, t, alpha, msg, sizeof msg);
    if (rc == KILN_ENOMEM) throw std::bad_alloc();
    if (rc) throw Fail{rc, ip, msg[0] ? msg : "cannot decode the image", src == file ? "" : src};
  }

  /* Texture ti as data (linear); -1 when it has no image. */
  int32_t linear_texture(int ti, const std::string &ref) {
    int ii = texture_image(ti, ref);
    if (ii < 0) return -1;
    auto key = std::make_pair(ii, int(KILN__TEX_LINEAR));
    auto it = tex_cache.find(key);
    if (it != tex_cache.end()) return it->second;
    kiln__texture t;
    decode(ii, KILN__TEX_LINEAR, &t, nullptr);
    return tex_cache[key] = add_texture(&t);
  }

  /* Texture ti as colour (sRGB, decoded after filtering as Cycles does); with its alpha plane
   * into *alpha (-1: none) when asked. */
  int32_t colour_texture(int ti, const std::string &ref, int32_t *alpha) {
    if (alpha) *alpha = -1;
    int ii = texture_image(ti, ref);
    if (ii < 0) return -1;
    auto it = base_cache.find(ii);
    if (it == base_cache.end()) {
      kiln__texture t, a;
      decode(ii, KILN__TEX_SRGB_FILTERED, &t, &a);
      int32_t ti_rgb, ti_a = -1;
      try {
        ti_rgb = add_texture(&t);
      } catch (...) {
        free(a.rgb);
        throw;
      }
      if (a.rgb) ti_a = add_texture(&a);
      it = base_cache.emplace(ii, std::make_pair(ti_rgb, ti_a)).first;
    }
    if (alpha) *alpha = it->second.second;
    return it->second.first;
  }

  static double num(const tinygltf::Value &v, const char *key, double def) {
    if (!v.IsObject() || !v.Has(key)) return def;
    const tinygltf::Value &x = v.Get(key);
    return x.IsNumber() ? x.GetNumberAsDouble() : def;
  }

  /* KHR_texture_transform of a texture reference as kiln's uv_xform (in kiln's uv, v up):
   * glTF's u' = T R S u in its v-down uv, R = [cos r, sin r; -sin r, cos r], conjugated by the
   * flip v -> 1 - v. The same mapping as Blender's importer (a Mapping node rotating by r
   * counter-clockwise in its v-up uv; tests/scene/test_gltf.c checks the two agree). */
  bool uv_transform(const tinygltf::ExtensionMap &ext, int texcoord, const std::string &ref,
                    float out[6]) {
    if (texcoord != 0) warn(at(ref, "texCoord"), "texCoord other than 0 is read as TEXCOORD_0");
    auto it = ext.find("KHR_texture_transform");
    if (it == ext.end()) return false;
    const tinygltf::Value &v = it->second;
    std::string ep = at(at(ref, "extensions"), "KHR_texture_transform");
    if (v.IsObject() && v.Has("texCoord") && num(v, "texCoord", 0) != 0)
      warn(at(ep, "texCoord"), "texCoord other than 0 is read as TEXCOORD_0");
    double off[2] = {0, 0}, sc[2] = {1, 1}, r = num(v, "rotation", 0);
    for (int k = 0; k < 2; k++) {
      if (v.IsObject() && v.Has("offset") && v.Get("offset").IsArray() &&
          v.Get("offset").ArrayLen() == 2)
        off[k] = v.Get("offset").Get(k).IsNumber() ? v.Get("offset").Get(k).GetNumberAsDouble() : 0;
      if (v.IsObject() && v.Has("scale") && v.Get("scale").IsArray() &&
          v.Get("scale").ArrayLen() == 2)
        sc[k] = v.Get("scale").Get(k).IsNumber() ? v.Get("scale").Get(k).GetNumberAsDouble() : 1;
    }
    double c = std::cos(r), s = std::sin(r);
    double M00 = c * sc[0], M01 = s * sc[1], M10 = -s * sc[0], M11 = c * sc[1];
    double x[6] = {M00, -M01, M01 + off[0], -M10, M11, 1 - M11 - off[1]};
    for (int k = 0; k < 6; k++) {
      if (!std::isfinite(x[k])) fail(ep, "the texture transform is not finite");
      out[k] = float(x[k]);
    }
    return true;
  }

  static bool finite_in(double v, double lo, double hi) {
    return std::isfinite(v) && v >= lo && v <= hi;
  }

  uint32_t material(uint32_t gi) {
    if (o->has_material) return o->material;
    if (scene_mat[gi] >= 0) return uint32_t(scene_mat[gi]);
    kiln__material mt{};
    mt.type = KILN__MAT_PRINCIPLED;
    mt.texture = mt.mr_texture = mt.normal_texture = mt.emission_texture = mt.alpha_texture = -1;
    mt.alpha = 1, mt.normal_scale = 1, mt.ior = 1.5f, mt.roughness = 1, mt.metallic = 1;
    mt.albedo[0] = mt.albedo[1] = mt.albedo[2] = 1;
    const float ident[6] = {1, 0, 0, 0, 1, 0};
    std::memcpy(mt.uv_xform, ident, sizeof ident);
    std::string name = "default";
    if (gi < m.materials.size()) fill_material(m.materials[gi], at("materials", gi), mt, &name);
    const std::string &full = name;
    mt.name = static_cast<char *>(malloc(full.size() + 1));
    if (!mt.name) throw std::bad_alloc();
    std::memcpy(mt.name, full.c_str(), full.size() + 1);
    uint32_t idx;
    if (kiln__sb_material(b, &mt, &idx)) {
      free(mt.name);
      throw std::bad_alloc();
    }
    scene_mat[gi] = idx;
    return idx;
  }

  void fill_material(const tinygltf::Material &g, const std::string &p, kiln__material &mt,
                     std::string *name) {
    *name = !g.name.empty() ? g.name : p;
    const tinygltf::PbrMetallicRoughness &pbr = g.pbrMetallicRoughness;
    std::string pp = at(p, "pbrMetallicRoughness");
    if (pbr.baseColorFactor.size() != 4)
      fail(at(pp, "baseColorFactor"), "baseColorFactor must be 4 numbers");
    for (int k = 0; k < 4; k++)
      if (!finite_in(pbr.baseColorFactor[size_t(k)], 0, 1))
        fail(at(pp, "baseColorFactor"), "baseColorFactor must be 4 numbers in [0, 1]");
    for (int k = 0; k < 3; k++) mt.albedo[k] = float(pbr.baseColorFactor[size_t(k)]);
    mt.alpha = float(pbr.baseColorFactor[3]);
    if (!finite_in(pbr.metallicFactor, 0, 1))
      fail(at(pp, "metallicFactor"), "metallicFactor must be in [0, 1]");
    if (!finite_in(pbr.roughnessFactor, 0, 1))
      fail(at(pp, "roughnessFactor"), "roughnessFactor must be in [0, 1]");
    mt.metallic = float(pbr.metallicFactor), mt.roughness = float(pbr.roughnessFactor);
    bool mask = g.alphaMode == "MASK", blend = g.alphaMode == "BLEND";
    if (blend) warn(at(p, "alphaMode"), "alphaMode BLEND is drawn as a cut-out at alpha 0.5");
    else if (!mask && g.alphaMode != "OPAQUE")
      fail(at(p, "alphaMode"), "unknown alphaMode '" + g.alphaMode + "'");
    if (mask && !finite_in(g.alphaCutoff, 0, 1))
      fail(at(p, "alphaCutoff"), "alphaCutoff must be in [0, 1]");
    /* a cutoff of 0 keeps everything: the same as opaque */
    mt.alpha_cutoff = mask ? float(g.alphaCutoff) : blend ? 0.5f : 0.0f;
    bool xf = false;
    if (pbr.baseColorTexture.index >= 0) {
      std::string r = at(pp, "baseColorTexture");
      mt.texture = colour_texture(pbr.baseColorTexture.index, at(r, "index"),
                                  mt.alpha_cutoff > 0 ? &mt.alpha_texture : nullptr);
      xf = uv_transform(pbr.baseColorTexture.extensions, pbr.baseColorTexture.texCoord, r,
                        mt.uv_xform);
    }
    auto other_xf = [&](const tinygltf::ExtensionMap &ext, int tc, const std::string &r) {
      float x[6];
      if (!uv_transform(ext, tc, r, x)) return;
      if (!xf) std::memcpy(mt.uv_xform, x, sizeof x), xf = true;
      else if (std::memcmp(x, mt.uv_xform, sizeof x) != 0)
        warn(at(at(r, "extensions"), "KHR_texture_transform"),
             "a material's textures share one transform in kiln: the first one's is used");
    };
    if (pbr.metallicRoughnessTexture.index >= 0) {
      std::string r = at(pp, "metallicRoughnessTexture");
      mt.mr_texture = linear_texture(pbr.metallicRoughnessTexture.index, at(r, "index"));
      other_xf(pbr.metallicRoughnessTexture.extensions, pbr.metallicRoughnessTexture.texCoord, r);
    }
    if (g.normalTexture.index >= 0) {
      std::string r = at(p, "normalTexture");
      if (!std::isfinite(g.normalTexture.scale))
        fail(at(r, "scale"), "the normal map's scale must be finite");
      mt.normal_texture = linear_texture(g.normalTexture.index, at(r, "index"));
      mt.normal_scale = float(g.normalTexture.scale);
      other_xf(g.normalTexture.extensions, g.normalTexture.texCoord, r);
    }
    if (g.occlusionTexture.index >= 0)
      warn(at(p, "occlusionTexture"), "ambient occlusion maps are ignored (the path tracer "
                                      "computes occlusion)");
    double strength = 1;
    auto es = g.extensions.find("KHR_materials_emissive_strength");
    if (es != g.extensions.end()) strength = num(es->second, "emissiveStrength", 1);
    if (!finite_in(strength, 0, 1e9))
      fail(at(at(at(p, "extensions"), "KHR_materials_emissive_strength"), "emissiveStrength"),
           "emissiveStrength must be >= 0");
    if (g.emissiveFactor.size() != 3)
      fail(at(p, "emissiveFactor"), "emissiveFactor must be 3 numbers");
    for (int k = 0; k < 3; k++) {
      if (!finite_in(g.emissiveFactor[size_t(k)], 0, 1))
        fail(at(p, "emissiveFactor"), "emissiveFactor must be 3 numbers in [0, 1]");
      mt.emission[k] = float(g.emissiveFactor[size_t(k)] * strength);
    }
    if (g.emissiveTexture.index >= 0) {
      std::string r = at(p, "emissiveTexture");
      mt.emission_texture = colour_texture(g.emissiveTexture.index, at(r, "index"), nullptr);
      other_xf(g.emissiveTexture.extensions, g.emissiveTexture.texCoord, r);
    }
    auto ior = g.extensions.find("KHR_materials_ior");
    if (ior != g.extensions.end()) {
      double v = num(ior->second, "ior", 1.5);
      /* glTF allows ior 0 (meaning infinite, a mirror): kiln needs a finite one */
      if (!finite_in(v, 1, 10))
        fail(at(at(at(p, "extensions"), "KHR_materials_ior"), "ior"), "ior must be in [1, 10]");
      mt.ior = float(v);
    }
    for (const auto &kv : g.extensions)
      if (kv.first != "KHR_materials_emissive_strength" && kv.first != "KHR_materials_ior")
        warn(at(at(p, "extensions"), kv.first.c_str()), "material extension ignored");
  }

  /* ---- nodes ------------------------------------------------------------------------------ */

  kiln__xform local(const tinygltf::Node &n, const std::string &p) {
    kiln__xform x = identity();
    if (!n.matrix.empty()) {
      if (n.matrix.size() != 16) fail(at(p, "matrix"), "matrix must be 16 numbers");
      for (int i = 0; i < 16; i++) {
        double v = n.matrix[size_t(i)];
        if (!std::isfinite(v) || std::fabs(v) > 1e30) fail(at(p, "matrix"), "matrix is not finite");
        x.m[i % 4][i / 4] = v; /* glTF matrices are column-major */
      }
      if (x.m[3][0] != 0 || x.m[3][1] != 0 || x.m[3][2] != 0 || x.m[3][3] != 1)
        fail(at(p, "matrix"), "matrix must be affine (its last row 0 0 0 1)");
      return x;
    }
    auto vec = [&](const std::vector<double> &v, size_t n_, const char *k, double *out) {
      if (v.empty()) return;
      if (v.size() != n_)
        fail(at(p, k), std::string(k) + " must be " + std::to_string(n_) + " numbers");
      for (size_t i = 0; i < n_; i++) {
        if (!std::isfinite(v[i]) || std::fabs(v[i]) > 1e30)
          fail(at(p, k), std::string(k) + " is not finite");
        out[i] = v[i];
      }
    };
    double t[3] = {0, 0, 0}, q[4] = {0, 0, 0, 1}, s[3] = {1, 1, 1};
    vec(n.translation, 3, "translation", t);
    vec(n.rotation, 4, "rotation", q);
    vec(n.scale, 3, "scale", s);
    double l = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    if (!(l > 1e-12)) fail(at(p, "rotation"), "rotation is not a unit quaternion");
    double X = q[0] / l, Y = q[1] / l, Z = q[2] / l, W = q[3] / l;
    double R[3][3] = {{1 - 2 * (Y * Y + Z * Z), 2 * (X * Y - Z * W), 2 * (X * Z + Y * W)},
                      {2 * (X * Y + Z * W), 1 - 2 * (X * X + Z * Z), 2 * (Y * Z - X * W)},
                      {2 * (X * Z - Y * W), 2 * (Y * Z + X * W), 1 - 2 * (X * X + Y * Y)}};
    for (int i = 0; i < 3; i++) {
      for (int j = 0; j < 3; j++) x.m[i][j] = R[i][j] * s[j];
      x.m[i][3] = t[i];
    }
    return x;
  }

  struct Placed {
    int node;
    kiln__xform world; /* node to glTF-scene space */
  };

  /* Every node of the scene with its world transform, in depth-first order (a node before its
   * children, children in order). Iterative: a deep hierarchy cannot exhaust the stack. */
  std::vector<Placed> walk() {
    std::vector<int> roots;
    std::string rp;
    if (m.defaultScene >= 0 || !m.scenes.empty()) {
      size_t si = m.defaultScene >= 0 ? size_t(m.defaultScene) : 0;
      if (si >= m.scenes.size()) fail("scene", "no scene " + std::to_string(si));
      roots = m.scenes[si].nodes;
      rp = at(at("scenes", si), "nodes");
    } else {
      /* no scenes: every node that is no node's child */
      std::vector<char> child(m.nodes.size(), 0);
      for (const auto &n : m.nodes)
        for (int c : n.children)
          if (c >= 0 && size_t(c) < m.nodes.size()) child[size_t(c)] = 1;
      for (size_t i = 0; i < m.nodes.size(); i++)
        if (!child[i]) roots.push_back(int(i));
      rp = "nodes";
    }
    std::vector<char> seen(m.nodes.size(), 0);
    std::vector<Placed> out, stack;
    for (size_t r = roots.size(); r-- > 0;) {
      if (roots[r] < 0 || size_t(roots[r]) >= m.nodes.size())
        fail(at(rp, r), "no node " + std::to_string(roots[r]));
      stack.push_back({roots[r], identity()});
    }
    while (!stack.empty()) {
      Placed pl = stack.back();
      stack.pop_back();
      std::string p = at("nodes", size_t(pl.node));
      if (seen[size_t(pl.node)])
        fail(p, "the node is reached twice (a node may have one parent, and no cycles)");
      seen[size_t(pl.node)] = 1;
      const tinygltf::Node &n = m.nodes[size_t(pl.node)];
      pl.world = mul(pl.world, local(n, p));
      out.push_back(pl);
      for (size_t c = n.children.size(); c-- > 0;) {
        int ci = n.children[c];
        if (ci < 0 || size_t(ci) >= m.nodes.size())
          fail(at(at(p, "children"), c), "no node " + std::to_string(ci));
        stack.push_back({ci, pl.world});
      }
    }
    return out;
  }

  std::string object_name(int ni) {
    const tinygltf::Node &n = m.nodes[size_t(ni)];
    std::string nn = !n.name.empty()                          ? n.name
                     : !m.meshes[size_t(n.mesh)].name.empty() ? m.meshes[size_t(n.mesh)].name
                                                              : at("nodes", size_t(ni));
    return nn;
  }

  /* ---- lights and camera ------------------------------------------------------------------ */

  void add_light(const Placed &pl, const kiln__xform &x, const std::string &p) {
    const tinygltf::Node &n = m.nodes[size_t(pl.node)];
    auto it = n.extensions.find("KHR_lights_punctual");
    if (it == n.extensions.end()) return;
    std::string ep = at(at(p, "extensions"), "KHR_lights_punctual");
    const tinygltf::Value &v = it->second;
    if (!v.IsObject() || !v.Has("light") || !v.Get("light").IsInt())
      fail(ep, "a node's KHR_lights_punctual needs a light index");
    int li = v.Get("light").Get<int>();
    if (li < 0 || size_t(li) >= m.lights.size())
      fail(at(ep, "light"), "no light " + std::to_string(li));
    const tinygltf::Light &g = m.lights[size_t(li)];
    std::string lp = at("extensions.KHR_lights_punctual.lights", size_t(li));
    kiln__plight l{};
    double col[3] = {1, 1, 1};
    if (!g.color.empty()) {
      if (g.color.size() != 3) fail(at(lp, "color"), "color must be 3 numbers");
      for (int k = 0; k < 3; k++) {
        col[k] = g.color[size_t(k)];
        if (!finite_in(col[k], 0, 1)) fail(at(lp, "color"), "color must be 3 numbers in [0, 1]");
      }
    }
    if (!finite_in(g.intensity, 0, 1e12)) fail(at(lp, "intensity"), "intensity must be >= 0");
    double scale;
    if (g.type == "directional") {
      l.type = KILN__LIGHT_SUN;
      scale = g.intensity / PBR_WATTS_TO_LUMENS; /* lux -> W/m^2, Blender's sun strength */
    } else if (g.type == "point" || g.type == "spot") {
      l.type = g.type == "point" ? KILN__LIGHT_POINT : KILN__LIGHT_SPOT;
      /* candela -> Blender watts (cd 4 pi / 683) -> kiln's radiant intensity */
      scale = g.intensity * 4 * PI / PBR_WATTS_TO_LUMENS * KILN_GLTF_WATTS_TO_INTENSITY;
    } else {
      fail(at(lp, "type"), "unknown light type '" + g.type + "'");
    }
    for (int k = 0; k < 3; k++) l.color[k] = float(col[k] * scale);
    const float zero[3] = {0, 0, 0};
    kiln__xform_point(&x, zero, l.position);
    double fwd[3] = {0, 0, -1}, d[3];
    xdir(x, fwd, d);
    if (!normalize(d)) fail(p, "the light's node transform is singular");
    for (int k = 0; k < 3; k++) l.direction[k] = float(d[k]);
    if (l.type == KILN__LIGHT_SPOT) {
      double in = g.spot.innerConeAngle, out = g.spot.outerConeAngle;
      if (!finite_in(out, 0, PI / 2) || out <= 0)
        fail(at(at(lp, "spot"), "outerConeAngle"), "outerConeAngle must be in (0, pi/2]");
      if (!finite_in(in, 0, out) || in >= out)
        fail(at(at(lp, "spot"), "innerConeAngle"), "innerConeAngle must be in [0, outerConeAngle)");
      l.cos_inner = float(std::cos(in)), l.cos_outer = float(std::cos(out));
    }
    if (g.range > 0) warn(at(lp, "range"), "a light's range is ignored (lights reach everywhere)");
    uint32_t id = 0;
    std::string name = o->name ? std::string(o->name) + "." : std::string();
    name += !n.name.empty() ? n.name : !g.name.empty() ? g.name : lp;
    if (kiln__sb_object(b, name.c_str(), &id)) throw std::bad_alloc();
    l.object_id = id;
    if (kiln__sb_plight(b, &l)) throw std::bad_alloc();
  }

  void set_camera(const Placed *pl, const float lo[3], const float hi[3]) {
    kiln__camera &cam = b->s.camera;
    cam = kiln__camera{};
    cam.type = KILN__CAM_PINHOLE;
    if (pl) {
      const tinygltf::Node &n = m.nodes[size_t(pl->node)];
      std::string p = at("cameras", size_t(n.camera));
      const tinygltf::Camera &c = m.cameras[size_t(n.camera)];
      if (c.type != "perspective")
        fail(at(p, "type"), "only perspective cameras are supported, not '" + c.type + "'");
      double yfov = c.perspective.yfov;
      if (!(yfov > 0 && yfov < PI))
        fail(at(at(p, "perspective"), "yfov"), "yfov must be in (0, pi) radians");
      const kiln__xform x = mul(o->xs[0], pl->world);
      const float zero[3] = {0, 0, 0};
      kiln__xform_point(&x, zero, cam.position);
      double f[3] = {0, 0, -1}, u[3] = {0, 1, 0}, wf[3], wu[3];
      xdir(x, f, wf), xdir(x, u, wu);
      if (!normalize(wf) || !normalize(wu))
        fail(at("nodes", size_t(pl->node)), "the camera's node transform is singular");
      for (int k = 0; k < 3; k++)
        cam.look_at[k] = cam.position[k] + float(wf[k]), cam.up[k] = float(wu[k]);
      cam.vfov_deg = float(yfov * 180.0 / PI);
      return;
    }
    /* no camera: one on +z (glTF's front) looking at the centre of the geometry's box, far
     * enough for its bounding sphere to fit the 40-degree field of view */
    cam.vfov_deg = 40;
    double c[3], r = 0;
    for (int k = 0; k < 3; k++) {
      c[k] = 0.5 * (double(lo[k]) + hi[k]);
      r += 0.25 * (double(hi[k]) - lo[k]) * (double(hi[k]) - lo[k]);
    }
    r = std::sqrt(r);
    if (!(r > 0)) r = 1;
    double dist = 1.1 * r / std::sin(20.0 * PI / 180.0);
    for (int k = 0; k < 3; k++) cam.position[k] = float(c[k]), cam.look_at[k] = float(c[k]);
    cam.position[2] = float(c[2] + dist);
    cam.up[1] = 1;
  }

  /* ---- everything ------------------------------------------------------------------------- */

  void run(uint32_t *first_obj, uint32_t *nobjs) {
    parse();
    check_extensions();
    if (!m.skins.empty())
      warn("skins", "skinning is ignored (meshes are drawn in their bind pose)");
    if (!m.animations.empty()) warn("animations", "animations are ignored");
    std::vector<Placed> nodes = walk();
    soups.resize(m.meshes.size());
    scene_mat.assign(m.materials.size() + 1, -1);
    std::vector<uint32_t> objs;
    std::vector<const Placed *> mesh_nodes;
    const Placed *cam_node = nullptr;
    size_t nmesh_nodes = 0;
    for (const Placed &pl : nodes) nmesh_nodes += m.nodes[size_t(pl.node)].mesh >= 0;
    for (const Placed &pl : nodes) {
      const tinygltf::Node &n = m.nodes[size_t(pl.node)];
      std::string p = at("nodes", size_t(pl.node));
      if (n.camera >= 0) {
        if (size_t(n.camera) >= m.cameras.size())
          fail(at(p, "camera"), "no camera " + std::to_string(n.camera));
        if (!cam_node) cam_node = &pl;
      }
      if (n.mesh < 0) continue;
      if (size_t(n.mesh) >= m.meshes.size())
        fail(at(p, "mesh"), "no mesh " + std::to_string(n.mesh));
      decode_mesh(size_t(n.mesh));
      std::string name = object_name(pl.node);
      if (o->name)
        name = nmesh_nodes == 1 ? std::string(o->name) : std::string(o->name) + "." + name;
      uint32_t id;
      if (kiln__sb_object(b, name.c_str(), &id)) throw std::bad_alloc();
      objs.push_back(id);
      mesh_nodes.push_back(&pl);
    }
    *first_obj = objs.empty() ? 0 : objs[0];
    *nobjs = uint32_t(objs.size());
    /* the materials the placed meshes use, in first-use order */
    std::vector<std::vector<uint32_t>> mats(m.meshes.size());
    float lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (size_t k = 0; k < o->nx; k++)
      for (size_t i = 0; i < mesh_nodes.size(); i++) {
        const Placed &pl = *mesh_nodes[i];
        size_t mi = size_t(m.nodes[size_t(pl.node)].mesh);
        Soup &s = soups[mi];
        if (mats[mi].empty()) {
          mats[mi].resize(m.materials.size() + 1, 0);
          for (uint32_t gi : s.mat)
            if (!mats[mi][gi]) mats[mi][gi] = material(gi) + 1; /* 0: not made yet */
          for (uint32_t &v : mats[mi]) v = v ? v - 1 : 0;
        }
        kiln__xform x = mul(o->xs[k], pl.world);
        uint32_t inst = b->next_instance++;
        if (kiln__sb_instance(b, inst, objs[i], &x, s.lo, s.hi)) throw std::bad_alloc();
        kiln__mesh km{};
        km.ntris = s.mat.size();
        km.pos = s.pos.data();
        km.nrm = s.any_nrm ? s.nrm.data() : nullptr;
        km.uv = s.any_uv ? s.uv.data() : nullptr;
        km.col = s.any_col ? s.col.data() : nullptr;
        km.tan = s.any_tan ? s.tan.data() : nullptr;
        std::vector<uint32_t> group(km.ntris, 0);
        km.tri_group = group.data();
        km.tri_mat = s.mat.data();
        km.ngroups = 1;
        km.nmat_names = m.materials.size(); /* tri_mat never UINT32_MAX: the last entry unused */
        int rc = kiln__sb_mesh(b, &km, &x, mats[mi].data(), &objs[i], &inst);
        if (rc == KILN_ENOMEM) throw std::bad_alloc();
        if (rc)
          fail(at("nodes", size_t(pl.node)), "a transformed vertex is not finite: the "
                                             "values are too large");
        if (k == 0)
          for (size_t t = 0; t < 8 && km.ntris; t++) {
            float c[3] = {t & 1 ? s.hi[0] : s.lo[0], t & 2 ? s.hi[1] : s.lo[1],
                          t & 4 ? s.hi[2] : s.lo[2]},
                  w[3];
            kiln__xform_point(&x, c, w);
            for (int a = 0; a < 3; a++)
              lo[a] = std::fmin(lo[a], w[a]), hi[a] = std::fmax(hi[a], w[a]);
          }
      }
    if (o->lights)
      for (const Placed &pl : nodes)
        for (size_t k = 0; k < o->nx; k++)
          add_light(pl, mul(o->xs[k], pl.world), at("nodes", size_t(pl.node)));
    if (o->camera) {
      if (!cam_node && !(lo[0] <= hi[0]))
        fail("", "the file has no camera and no geometry to frame with a default one");
      set_camera(cam_node, lo, hi);
    }
  }
};

/* The path string "a.b[2].c" as kiln__json_locate's steps (keys point into storage). */
int path_steps(const std::string &path, std::vector<std::string> &storage,
               kiln__jpath_step *steps) {
  storage.clear();
  std::vector<std::pair<int, int>> parts; /* (is key, storage index or array index) */
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '.') {
      i++;
      continue;
    }
    if (path[i] == '[') {
      size_t e = path.find(']', i);
      if (e == std::string::npos) break;
      parts.emplace_back(0, std::atoi(path.substr(i + 1, e - i - 1).c_str()));
      i = e + 1;
      continue;
    }
    size_t e = path.find_first_of(".[", i);
    if (e == std::string::npos) e = path.size();
    storage.push_back(path.substr(i, e - i));
    parts.emplace_back(1, int(storage.size() - 1));
    i = e;
  }
  int n = 0;
  for (const auto &pt : parts) {
    if (n == KILN__SJ_MAX_DEPTH) break;
    steps[n++] = pt.first ? kiln__jpath_step{storage[size_t(pt.second)].c_str(), 0}
                          : kiln__jpath_step{nullptr, pt.second};
  }
  return n;
}

void copy(char *dst, size_t n, const std::string &s) { std::snprintf(dst, n, "%s", s.c_str()); }

} // namespace

extern "C" int kiln__gltf_add(kiln__scene_builder *b, const char *path, const kiln__gltf_opts *o,
                              uint32_t *first_obj, uint32_t *nobjs, kiln__gltf_error *err) {
  std::memset(err, 0, sizeof *err);
  *first_obj = 0, *nobjs = 0;
  std::snprintf(err->file, sizeof err->file, "%s", path);
  try {
    Loader ld;
    ld.b = b, ld.o = o, ld.file = path;
    char *d = kiln__dirname(path);
    if (!d) throw std::bad_alloc();
    ld.dir = d;
    free(d);
    try {
      ld.run(first_obj, nobjs);
      return 0;
    } catch (const Fail &f) {
      copy(err->path, sizeof err->path, f.path);
      copy(err->message, sizeof err->message, f.message);
      if (!f.file.empty()) {
        copy(err->file, sizeof err->file, f.file);
      } else if (!ld.binary && !f.path.empty() && !ld.json_text.empty()) {
        std::vector<std::string> storage;
        kiln__jpath_step steps[KILN__SJ_MAX_DEPTH];
        int n = path_steps(f.path, storage, steps);
        kiln__json_locate(ld.json_text.c_str(), steps, n, false, &err->line, &err->column);
      }
      return f.code;
    }
  } catch (const std::bad_alloc &) {
    std::snprintf(err->message, sizeof err->message, "out of memory");
    return KILN_ENOMEM;
  } catch (const std::exception &e) {
    std::snprintf(err->message, sizeof err->message, "malformed glTF: %s", e.what());
    return KILN_EPARSE;
  } catch (...) {
    std::snprintf(err->message, sizeof err->message, "malformed glTF");
    return KILN_EPARSE;
  }
}
