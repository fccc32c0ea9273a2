#include <unistd.h>
#include "memmap3.h"
#include "mm3_test.h"

TEST(anon_zeroed) {
  mm3_map *m = NULL;
  CHECK_RC(mm3_map_anon(128, NULL, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 128);
  CHECK_EQ(mm3_map_ptr(m)[5], 0);
  mm3_map_close(m);
}

TEST(version) {
  int a, b, c;
  CHECK(strcmp(mm3_version(&a, &b, &c), MM3_VERSION_STRING) == 0);
  CHECK(strcmp(mm3_strerror(MM3_ERANGE), "offset or length out of range") == 0);
}

RUN_TESTS(anon_zeroed, version)
