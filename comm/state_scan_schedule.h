// Schedule of the exclusive state scan: a butterfly (recursive doubling) over
// positions 0..P-1 of the scan order. In round k, position p pairs with
// q = p ^ 2^k (when q < P). Each position keeps two packed (a, S) pairs:
//   part = fold of the aligned 2^(k+1)-block containing p (to send later),
//   excl = fold of the positions before p inside that block (its output).
// The lower partner's part is always needed by the higher one (its excl
// grows). The higher partner's part is sent down only if the lower one will
// still send its block total in a later round, so the last round carries
// only lower -> higher messages, and a position whose remaining higher bits
// are all ones never needs its block total again. For P = 2^R, position p
// sends R - t(p) messages, t(p) = number of leading one bits of p in R bits
// (R*P - (P-1) messages in all, against R*P for a plain butterfly); in
// general sends() below decides. Every message is one packed pair,
// n_heads * (1 + state_elems) floats; rounds = ceil(log2 P).
#pragma once

namespace ringscan::comm::scan_schedule {

// ceil(log2 P): the number of rounds.
inline int rounds(int P) {
  int r = 0;
  while ((1 << r) < P) ++r;
  return r;
}

bool sends(int pos, int round, int P);

// Whether `pos` sends its block total in a round after `round`, i.e. still
// needs `part` once `round` is done.
inline bool needs_part_after(int pos, int round, int P) {
  for (int j = round + 1; j < rounds(P); ++j)
    if (sends(pos, j, P)) return true;
  return false;
}

// Whether position `pos` sends its part to its partner in `round`.
inline bool sends(int pos, int round, int P) {
  const int partner = pos ^ (1 << round);
  if (partner >= P) return false;
  if (partner > pos) return true;  // the higher partner folds it into its excl
  return needs_part_after(partner, round, P);
}

}  // namespace ringscan::comm::scan_schedule
