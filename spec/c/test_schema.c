/* mm3_schema_layout, and creating a file from schema text alone. */
#include <unistd.h>

#include "memmap3.h"
#include "mm3_test.h"

TEST(layout_of_structs_and_containers) {
  uint64_t size = 0;
  uint32_t align = 0;
  CHECK_RC(mm3_schema_layout("struct S{a:u8;b:u64;c:u16}\nroot S", &size, &align));
  CHECK_EQ(size, 24);
  CHECK_EQ(align, 8);
  CHECK_RC(mm3_schema_layout("enum E:u16{a,b}\nstruct S{e:E;x:u8[3][2]}\nroot S[4]", &size, &align));
  CHECK_EQ(size, 4 * 8);
  CHECK_EQ(align, 2);
  CHECK_RC(mm3_schema_layout("root map<string<16>,u64>", &size, NULL));
  CHECK_EQ(size, 48);
  CHECK_RC(mm3_schema_layout("root vec<u16,64>", &size, &align));
  CHECK_EQ(size, 136);
  CHECK_EQ(align, 8);
}

TEST(layout_errors) {
  uint64_t size = 0;
  CHECK_EQ(mm3_schema_layout("root nope", &size, NULL), MM3_ESCHEMA);
  CHECK_EQ(mm3_schema_layout("struct A{x:u8}", &size, NULL), MM3_ESCHEMA);
  CHECK_EQ(mm3_schema_layout("root u8[0]", &size, NULL), MM3_ESCHEMA);
  CHECK_EQ(mm3_schema_layout("root u8[1099511627776][1099511627776]", &size, NULL), MM3_ETOOBIG);
  CHECK_EQ(mm3_schema_layout(NULL, &size, NULL), MM3_EINVAL);
}

TEST(create_from_text_alone) {
  char path[256];
  mm3t_tmpname(path, sizeof path, "schema");
  mm3_file *f = NULL;
  mm3_file_opts o = {.create = 1, .exclusive = 1, .schema = "struct P{id:u64;name:string<12>}\nroot P[3]"};
  CHECK_RC(mm3_file_open(path, &o, &f));
  REQUIRE(f);
  CHECK_EQ(mm3_file_root_size(f), 3 * 24);
  mm3_file_close(f);
  mm3_file_opts bad = {.create = 1, .exclusive = 1, .schema = "root bogus"};
  char path2[256];
  mm3t_tmpname(path2, sizeof path2, "schema");
  CHECK_EQ(mm3_file_open(path2, &bad, &f), MM3_ESCHEMA);
  CHECK(access(path2, F_OK) != 0); /* nothing created */
  unlink(path);
}

RUN_TESTS(layout_of_structs_and_containers, layout_errors, create_from_text_alone)
