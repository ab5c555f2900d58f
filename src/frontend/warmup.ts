/**
 * V8 optimizes the lexer and the parser while they read the first few
 * hundred kilobytes of a TU. A path first taken later (a rare statement, a
 * redeclaration) then has no type feedback: V8 throws the optimized code
 * away and compiles it again, on the same two cores gcc -E runs on.
 * Reading this small text first, once per process, takes each path so the
 * first optimized code already covers them. It is read twice: V8 records
 * feedback for a function only once it has run a while, so the first read
 * of a path may teach it nothing (rare functions still get no feedback, but
 * these are then called, not inlined: nothing to throw away). It models
 * nothing and keeps nothing: the TU's own run starts from fresh objects.
 */
/** UTF-8 é read as latin1 (as gcc -E output is): characters past ASCII in a name. */
const NON_ASCII = '\u00c3\u00a9';

export const WARMUP_TEXT = String.raw`# 1 "warmup.c"
# 1 "<built-in>" 1
# 1 "warmup.c" 2
# 1 "./include/w.h" 1
  #pragma GCC diagnostic push
typedef unsigned long size_t;
typedef int (*cmp_t)(const void *, const void *);
typedef void fn_t(int);
typedef struct { int a : 3, : 0; unsigned b __attribute__((aligned(4))); } anon_t;
typedef _Bool bool;
typedef __typeof__(sizeof(int)) sz2;
typedef __builtin_va_list va_list;
typedef signed char s8; typedef short s16; typedef long long s64; typedef __int128 s128; typedef _Float128 f128;
typedef double _Complex cd;
struct list { struct list *next, *prev; } __attribute__((__aligned__(sizeof(struct list))));
union u { int i; float f; char c[4]; struct { int x; }; } __attribute__((packed));
enum __attribute__((__packed__)) e { E0, E1 = 1 << 2, E2 __attribute__((deprecated)) = E1 + 1, };
enum { A0 = sizeof(struct list), A1 } __attribute__((mode(byte))) aa;
_Static_assert(sizeof(int) == 4, "int");
extern int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2))) __attribute__((__cold__));
extern int printk(const char *fmt, ...);
extern int shadowed; int shadowed = 1; static int caf${NON_ASCII} = 2;
extern void __warn(void) __asm__("warn_" "x");
static inline __attribute__((__always_inline__)) __attribute__((__gnu_inline__)) int inl(int x) { return x; }
extern __typeof__(inl) inl2;
__extension__ typedef unsigned long long u64;
extern _Thread_local int tl; static __thread int tl2;
_Alignas(8) static char buf[16] __attribute__((__section__(".data..w"))) = "ab" "c";
static const int tab[] = { [0] = 1, [1 ... 3] = 2, [E1] = 3, };
static struct list lst = { .next = &lst, .prev = (&lst) }, *plst = &lst;
static anon_t at = { a: 1, b: 2 };
int (*fp)(int) = inl;
void (*sig(int, void (*)(int)))(int);
int kr(a, b) { return a + b; }
static int bs = 1 \
  + 2;
void va(int n, ...);
static int arr2[2][3], *parr[4];
register int rv asm("r12");
__auto_type autov = 1;
_Atomic(int) ai; _Atomic int ai2;
int vla(int n, int m[static n], int k[const 2], int z[*]);
__attribute__((__section__(".init.text"))) __attribute__((__cold__)) __attribute__((no_instrument_function)) int __attribute__((weak)) winit(void) { return 0; }
void al(void) __attribute__((alias("winit"))) __attribute__((__used__)) __attribute__((noinline)) __attribute__((patchable_function_entry(0, 0)));
asm(".globl w\n\t.type w, @function\n" "w: ret");
# 40 "./include/w.h" 3
static inline void cl(int *p) { (void)p; }
# 2 "warmup.c" 2

static int f(struct list *l, int n, cmp_t c, ...)
{
  __label__ out;
  int i = 0, j, *p = &i, q[4] = {0};
  static const char *s = L"w" u8"x", ch = '\n', wc = L'x', u16 = u'y', u32 = U'z';
  extern int ext;
  int blockfn(int);
  __attribute__((cleanup(cl))) int cv = 0;
  struct local { int z; } lo = { .z = 1 };
  enum { LE = 3 } le = LE;
  int shadowed = caf${NON_ASCII};
  _Static_assert(LE == 3, "le");
  { typedef int size_t; size_t inner = shadowed; __label__ l2; l2: inner++; }
  double d = 1.5e+3 + 0x1p-3 + .5 + 1E-2f + 0x1P+2;
  unsigned long long ull = 0xffULL;
  float _Complex fc = 1.0if;
  va_list ap;
  __builtin_va_start(ap, c);
  d = __builtin_va_arg(ap, double);
  __builtin_va_end(ap);
  i = __builtin_offsetof(struct list, next) + __builtin_offsetof(anon_t, b);
  i += _Generic(i, int: 1, long: 2, default: 3);
  i = __builtin_types_compatible_p(int, long) ? 1 : 0;
  i = i ?: 1;
  j = (int)sizeof(int) + (int)sizeof i + __alignof__(long) + _Alignof(int);
  j = (int){ 2 } + ((struct local){ .z = 3 }).z + (int [2]){ 1, 2 }[0];
  j = ({ int t = j; t + 1; });
  j = __real__ fc + __imag__ fc;
  j <<= 1; j >>= 1; j *= 2; j /= 2; j %= 3; j += 1; j -= 1; j &= 7; j ^= 1; j |= 8;
  j = !j || j && ~j | j ^ j & j == j != j < j > j <= j >= j << 1 >> 1 + j - j * j / 1 % 1;
  j = -j + +j; j++; j--; ++j; --j;
  p = &q[1]; j = *p + p[0] + (l->next == l ? 1 : 0) + lo.z;
  if (j) j = 1; else if (!j) j = 2; else { ; }
  switch (j) { case 0: break; case 1 ... 3: j = 4; __attribute__((fallthrough)); case E1: default: j = 5; }
  while (j < 10) { j++; if (j == 7) continue; if (j == 8) break; }
  do j--; while (j > 0);
  for (int k = 0; k < 2; k++) j += k;
  for (j = 0; j < 2; j++) ;
  for (;;) break;
  static void *lbl = &&out;
  goto *lbl;
  goto out;
  asm volatile("nop" ::: "memory");
  asm("mov %1, %0" : "=r"(j) : "r"(i) : "cc");
  asm goto("jmp %l[out]" : : [v] "i"(1) : : out);
  __asm__ __volatile__(".pushsection .w\n\t.popsection" : [o] "+m"(j));
  __asm__ inline("" :::);
  j = blockfn(ext) + __builtin_expect(j, 0) + __builtin_constant_p(j);
  j = c(s, &ch) + (wc + u16 + u32) + (int)d + (int)ull + tab[0] + buf[0];
  __builtin_memcpy(q, q, sizeof(q));
  j = __builtin_shufflevector(j, j);
  j = (int)__builtin_convertvector(j, long);
  __func__[0] == 'f' ? (void)0 : (void)1;
out:
  return j + n;
  /* a comment
     over lines */
  // a line comment
}
int main(void) { return f(&lst, 1, 0) + kr(1, 2) + at.a + aa + bs; }
`;

/** The .c beside it, for the macros and the lines of the .c's own entities. */
export const WARMUP_SOURCE = String.raw`// warmup.c
#include "w.h"
#define W(x) (x) /* a macro */
#define LONG_MACRO(a, b) \
	((a) + (b) + W(1))
#ifdef CONFIG_W
# define CONDITIONAL 1
#endif
static int f(struct list *l, int n, cmp_t c, ...)
{
	/* a comment
	   over lines */
	const char *s = "a \"string\" // not a comment", ch = '\'';
	return LONG_MACRO(n, W(ch)); // a comment
}
int main(void) { return f(0, 1, 0) + CONDITIONAL; }
`;

/** Times the text is read (as one text, so its declarations are redeclared). */
export const WARMUP_REPEAT = 2;
