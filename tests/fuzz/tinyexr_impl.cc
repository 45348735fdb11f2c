// tinyexr_impl.cc: tinyexr's implementation, compiled from Debian's own header into the exr fuzz
// target of `make fuzz` only (tests/fuzz/CMakeLists.txt), so that AddressSanitizer sees inside the
// decoder that kiln hands untrusted files to. The library kiln ships with (libtinyexr.so, Debian's
// build) is uninstrumented: a memory error inside it that does not crash would go unseen.
// Definitions in the executable take precedence over the shared library's, so kiln's calls land
// here. Not built otherwise: the replay build tests the library kiln links.
#define TINYEXR_IMPLEMENTATION
#include <tinyexr.h>
