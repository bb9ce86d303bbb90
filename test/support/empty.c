/* keeps the support archive non-empty */
typedef int hwsock__test_support_empty;
