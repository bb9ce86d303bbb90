/* Memory map changes without a reset (hwsock_device_set_regions,
 * _remove_region, _uaddr_to_gpa): a hot-plugged region is usable at once,
 * a queue follows its memory to a new host mapping, a map that would leave
 * a queue outside is refused and changes nothing, a removed region's
 * addresses fault, bad maps are refused. The driver side is the vring
 * builder; "a request" is one with an unknown opcode, which the device
 * completes itself with ENOSYS. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "device_int.h"
#include "support/vring_builder.h"

#define B_GPA 0x10000000ull
#define B_SIZE (64u << 10)

static vrb r;
static unsigned char *blk_b;
static hwsock_device *dev;

static void setup(void) {
  cr_assert_eq(vrb_init(&r, 0, 0, 64), 0);
  blk_b = aligned_alloc(4096, B_SIZE);
  cr_assert_not_null(blk_b);
  memset(blk_b, 0, B_SIZE);
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 8;
  c.max_inflight = 16;
  c.max_regions = 3;
  cr_assert_eq(hwsock_device_new(&c, &dev), 0);
  cr_assert_eq(hwsock_device_add_region(dev, r.gpa, r.size, r.mem), 0);
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, r.qsize, r.desc_gpa,
                                         r.avail_gpa, r.used_gpa),
               0);
  cr_assert_eq(hwsock_device_start(dev), 0);
}

static void teardown(void) {
  hwsock_device_free(dev);
  vrb_free(&r);
  free(blk_b);
}

TestSuite(regions, .init = setup, .fini = teardown);

/* One request on ring q whose 64-byte response buffer is at resp_gpa (0: in
 * the ring's scratch). Returns the completion's status as the device wrote
 * it, or -1 when there was no completion. */
static long request_on(vrb *q, uint64_t resp_gpa, const void *resp_host) {
  hwsock_req_hdr h;
  memset(&h, 0, sizeof(h));
  hwsock_le16_set(&h.opcode, 0x7fff);
  uint64_t out = vrb_alloc(q, sizeof(h), 8);
  memcpy(vrb_host(q, out), &h, sizeof(h));
  if (resp_gpa == 0) {
    resp_gpa = vrb_alloc(q, 64, 8);
    resp_host = vrb_host(q, resp_gpa);
  }
  vrb_seg segs[2] = {{out, sizeof(h), 0},
                     {resp_gpa, 64, HWSOCK_VRING_DESC_F_WRITE}};
  cr_assert_geq(vrb_add_chain(q, segs, 2), 0);
  vrb_publish(q);
  hwsock_device_kick(dev, 0);
  uint32_t id, len;
  if (vrb_get_used(q, &id, &len) != 1)
    return -1;
  return (long)hwsock_le32_get(&((const hwsock_resp_hdr *)resp_host)->status);
}

static const long enosys = -HWSOCK_ENOSYS;

static hwsock_region region_a(void) {
  return (hwsock_region){.gpa = r.gpa, .size = r.size, .hva = r.mem};
}
static hwsock_region region_b(void) {
  return (hwsock_region){.gpa = B_GPA, .size = B_SIZE, .hva = blk_b};
}

Test(regions, a_hot_plugged_region_is_usable_at_once) {
  cr_assert_eq(request_on(&r, 0, NULL), enosys);
  hwsock_region map[2] = {region_a(), region_b()};
  cr_assert_eq(hwsock_device_set_regions(dev, map, 2), 0); /* 0 in flight */
  cr_assert_eq(request_on(&r, B_GPA + 128, blk_b + 128), enosys);
  cr_assert_eq(hwsock_device_status(dev) & HWSOCK_STATUS_NEEDS_RESET, 0);
}

Test(regions, the_queue_follows_its_memory_to_a_new_mapping) {
  cr_assert_eq(request_on(&r, 0, NULL), enosys);
  /* The same guest RAM, now at another host address (a VMM that remapped
   * it): the rings are reached through the new map. */
  unsigned char *moved = aligned_alloc(4096, r.size);
  cr_assert_not_null(moved);
  memcpy(moved, r.mem, r.size);
  hwsock_region map[1] = {region_a()};
  map[0].hva = moved;
  cr_assert_eq(hwsock_device_set_regions(dev, map, 1), 0);
  vrb r2 = r;
  r2.mem = moved;
  r2.desc = (void *)(moved + ((uint8_t *)r.desc - r.mem));
  r2.avail = (void *)(moved + ((uint8_t *)r.avail - r.mem));
  r2.used = (void *)(moved + ((uint8_t *)r.used - r.mem));
  r2.borrowed = 1;
  uint16_t old_used = vrb_used_idx(&r);
  cr_assert_eq(request_on(&r2, 0, NULL), enosys);
  cr_assert_eq(vrb_used_idx(&r), old_used, "the old mapping was written");
  /* back to the first mapping before it is freed */
  memcpy(r.mem, moved, r.size);
  map[0].hva = r.mem;
  cr_assert_eq(hwsock_device_set_regions(dev, map, 1), 0);
  r.avail_shadow = r2.avail_shadow;
  r.next_desc = r2.next_desc;
  r.last_used = r2.last_used;
  r.brk = r2.brk;
  cr_assert_eq(request_on(&r, 0, NULL), enosys);
  free(moved);
}

Test(regions, a_map_without_the_queue_is_refused_and_changes_nothing) {
  hwsock_region only_b[1] = {region_b()};
  cr_assert_eq(hwsock_device_set_regions(dev, only_b, 1), HWSOCK_EBUSY);
  /* a queue part straddling the end of a shrunk region */
  hwsock_region shrunk[1] = {region_a()};
  shrunk[0].size = r.used_gpa - r.gpa + 4;
  cr_assert_eq(hwsock_device_set_regions(dev, shrunk, 1), HWSOCK_EBUSY);
  cr_assert_eq(hwsock_device_remove_region(dev, r.gpa), HWSOCK_EBUSY);
  cr_assert_eq(request_on(&r, 0, NULL), enosys);
}

Test(regions, a_removed_region_faults_again) {
  hwsock_region map[2] = {region_a(), region_b()};
  cr_assert_eq(hwsock_device_set_regions(dev, map, 2), 0);
  cr_assert_eq(hwsock_device_remove_region(dev, B_GPA + 4096), HWSOCK_ENOENT);
  cr_assert_eq(hwsock_device_remove_region(dev, B_GPA), 0);
  cr_assert_eq(hwsock_device_remove_region(dev, B_GPA), HWSOCK_ENOENT);
  /* a buffer in the removed region is outside guest memory: a ring fault */
  cr_assert_eq(request_on(&r, B_GPA, blk_b), -1);
  cr_assert(hwsock_device_status(dev) & HWSOCK_STATUS_NEEDS_RESET);
}

Test(regions, bad_maps_are_refused_whole) {
  hwsock_region over[2] = {region_a(), region_a()};
  over[1].gpa += 4096;
  over[1].hva = blk_b;
  over[1].size = 4096;
  cr_assert_eq(hwsock_device_set_regions(dev, over, 2), HWSOCK_EINVAL);
  hwsock_region zero[2] = {region_a(), region_b()};
  zero[1].size = 0;
  cr_assert_eq(hwsock_device_set_regions(dev, zero, 2), HWSOCK_EINVAL);
  hwsock_region wrap[2] = {region_a(), region_b()};
  wrap[1].gpa = UINT64_MAX - 100;
  cr_assert_eq(hwsock_device_set_regions(dev, wrap, 2), HWSOCK_EINVAL);
  hwsock_region many[4] = {region_a(), region_b(), region_b(), region_b()};
  many[2].gpa = 2 * B_GPA;
  many[3].gpa = 3 * B_GPA;
  cr_assert_eq(hwsock_device_set_regions(dev, many, 4), HWSOCK_ENOSPC);
  hwsock_region ua[2] = {region_a(), region_b()};
  ua[0].uaddr = 0x7f0000000000ull;
  ua[1].uaddr = 0x7f0000000000ull + 4096; /* inside region a's uaddr range */
  cr_assert_eq(hwsock_device_set_regions(dev, ua, 2), HWSOCK_EINVAL);
  /* a caller's larger element with a non-zero byte we do not know */
  struct {
    hwsock_region r;
    uint64_t later;
  } big[1] = {{region_a(), 1}};
  cr_assert_eq(hwsock_device_set_regions_sized(dev, &big[0].r, 1,
                                               sizeof(big[0])),
               HWSOCK_EINVAL);
  big[0].later = 0;
  cr_assert_eq(hwsock_device_set_regions_sized(dev, &big[0].r, 1,
                                               sizeof(big[0])),
               0);
  cr_assert_eq(hwsock_device_set_regions_sized(dev, &big[0].r, 1, 8),
               HWSOCK_EINVAL);
  /* none of the refused maps took: B is still unknown */
  cr_assert_eq(request_on(&r, 0, NULL), enosys);
  cr_assert_eq(hwsock_device_remove_region(dev, B_GPA), HWSOCK_ENOENT);
}

Test(regions, front_end_addresses_translate_inside_one_region) {
  hwsock_region map[2] = {region_a(), region_b()};
  map[0].uaddr = 0x7f0000000000ull;
  map[1].uaddr = 0x7e0000000000ull;
  cr_assert_eq(hwsock_device_set_regions(dev, map, 2), 0);
  uint64_t gpa = 0;
  cr_assert_eq(hwsock_device_uaddr_to_gpa(dev, 0x7f0000000010ull, 16, &gpa),
               0);
  cr_assert_eq(gpa, r.gpa + 0x10);
  cr_assert_eq(hwsock_device_uaddr_to_gpa(dev, 0x7e0000000000ull + B_SIZE - 8,
                                          8, &gpa),
               0);
  cr_assert_eq(gpa, B_GPA + B_SIZE - 8);
  cr_assert_eq(hwsock_device_uaddr_to_gpa(dev, 0x7e0000000000ull + B_SIZE - 8,
                                          9, &gpa),
               HWSOCK_EFAULT);
  cr_assert_eq(hwsock_device_uaddr_to_gpa(dev, 0x7e0000000000ull - 1, 1, &gpa),
               HWSOCK_EFAULT);
  /* regions added without one have no front-end address */
  cr_assert_eq(hwsock_device_remove_region(dev, B_GPA), 0);
  cr_assert_eq(hwsock_device_add_region(dev, B_GPA, B_SIZE, blk_b), 0);
  cr_assert_eq(hwsock_device_uaddr_to_gpa(dev, 0x7e0000000000ull, 1, &gpa),
               HWSOCK_EFAULT);
}
