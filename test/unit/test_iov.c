/* lib/iov.c: gather and scatter (one walk, two directions) and slice, over
 * lists with empty and uneven segments, from offsets inside and past them. */
#include <criterion/criterion.h>
#include <string.h>

#include "iov.h"

/* "abc" | "" | "d" | "efghi": 9 bytes in four segments. */
static char s0[3], s2[1], s3[5];
static struct iovec list[4];

static void fill(void) {
  memcpy(s0, "abc", 3);
  memcpy(s2, "d", 1);
  memcpy(s3, "efghi", 5);
  list[0] = (struct iovec){s0, 3};
  list[1] = (struct iovec){s0 + 3, 0};
  list[2] = (struct iovec){s2, 1};
  list[3] = (struct iovec){s3, 5};
}

Test(iov, gather_from_offsets_across_segments) {
  fill();
  char buf[16];
  memset(buf, '.', sizeof(buf));
  cr_assert_eq(hwsock__iov_gather(list, 4, 0, buf, 9), 9);
  cr_assert_arr_eq(buf, "abcdefghi", 9);
  memset(buf, '.', sizeof(buf));
  cr_assert_eq(hwsock__iov_gather(list, 4, 2, buf, 4), 4);
  cr_assert_arr_eq(buf, "cdef.", 5, "only len bytes are written");
  cr_assert_eq(hwsock__iov_gather(list, 4, 3, buf, 16), 6, "list is shorter");
  cr_assert_arr_eq(buf, "defghi", 6);
  cr_assert_eq(hwsock__iov_gather(list, 4, 9, buf, 4), 0, "offset at end");
  cr_assert_eq(hwsock__iov_gather(list, 4, 50, buf, 4), 0, "offset past");
  cr_assert_eq(hwsock__iov_gather(list, 4, 0, buf, 0), 0);
}

Test(iov, scatter_to_offsets_across_segments) {
  fill();
  cr_assert_eq(hwsock__iov_scatter(list, 4, 2, "XYZW", 4), 4);
  cr_assert_arr_eq(s0, "abX", 3);
  cr_assert_arr_eq(s2, "Y", 1);
  cr_assert_arr_eq(s3, "ZWghi", 5, "the rest is untouched");
  cr_assert_eq(hwsock__iov_scatter(list, 4, 6, "0123456789", 10), 3,
               "list is shorter");
  cr_assert_arr_eq(s3, "ZW012", 5);
  cr_assert_eq(hwsock__iov_scatter(list, 4, 9, "x", 1), 0, "offset at end");
  cr_assert_arr_eq(s0, "abX", 3);
}

Test(iov, slice_bounds_by_length_and_capacity) {
  fill();
  struct iovec d[4];
  unsigned dn = 99;
  cr_assert_eq(hwsock__iov_slice(list, 4, 2, 5, d, 4, &dn), 5);
  cr_assert_eq(dn, 3, "the empty segment adds nothing");
  cr_assert_eq(d[0].iov_base, s0 + 2);
  cr_assert_eq(d[0].iov_len, 1);
  cr_assert_eq(d[1].iov_base, s2);
  cr_assert_eq(d[2].iov_base, s3);
  cr_assert_eq(d[2].iov_len, 3);
  cr_assert_eq(hwsock__iov_slice(list, 4, 0, 100, d, 2, &dn), 4,
               "capacity bounds the slice");
  cr_assert_eq(dn, 2, "abc, d: the empty segment takes no slot");
  cr_assert_eq(d[1].iov_base, s2);
}
