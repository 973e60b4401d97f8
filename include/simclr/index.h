/* index.h: a similarity index of embeddings, exact cosine top-k.
 *
 * A SimclrIndex holds n rows of dimension d (unit vectors: every row is
 * L2-normalised when added, so a dot product is the cosine similarity), and
 * for each row an entry: sample id, timestamp, view, label and an optional
 * name (a file path, for indexes of images). Search is exact: the scores of
 * a block of queries against a block of rows are one cblas_sgemm, and a
 * partial selection (a k-element heap per query) keeps the best k of each
 * query as the row blocks go by, so memory stays (query block x row block)
 * whatever n is. Ties are broken by the lower row index.
 *
 * On disk an index is what simclrnpysink writes: a NumPy .npy file (dtype
 * '<f4' or '<f8', C order, shape (n, d)) and a CSV sidecar with the header
 * `index,pts_ns,sample_id,view,label` (optionally a sixth column `name`) and
 * one line per row, index = 0 .. n-1 in order; empty fields are unknown
 * (-1). Loading checks everything and names the file at fault: .npy header,
 * dtype, shape, byte count, non-finite values (the row), a sidecar with
 * another number of rows than the array, a malformed line (its number), an
 * empty index. Saving writes both files to temporary files beside their
 * destinations and renames them into place; the saved rows are the unit
 * rows (a loaded index saves the normalised array).
 *
 * This is not an approximate index (no clustering, no quantisation) and it
 * does not compute embeddings (see embed.h).
 *
 * Thread-safety: one index, one thread at a time when it changes; searches
 * of an index that no thread changes may run concurrently (each call has its
 * own scratch). OpenBLAS threads (process-wide) parallelise the products.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrIndex SimclrIndex;

/* What a row is. -1 marks an unknown id, timestamp or label; view is -1 for
 * an original frame (as GstSimclrFrameMeta) and also when unknown. */
typedef struct {
  int64_t id;          /* sample id: frame number or data-set index */
  int64_t pts_ns;      /* frame timestamp in nanoseconds */
  int view;
  int label;
  const char *name;    /* NULL or a path; copied by add, borrowed by get */
} SimclrIndexEntry;

/* An empty index of dimension @dim (1 .. 65536). NULL with @err set on a
 * bad dimension or no memory. Free with simclr_index_free. */
SimclrIndex *simclr_index_new (int dim, SimclrError *err);
void simclr_index_free (SimclrIndex *idx);   /* NULL is a no-op */

int simclr_index_dim (const SimclrIndex *idx);
int64_t simclr_index_size (const SimclrIndex *idx);

/* Appends @n rows (n, dim) with their entries (@entries may be NULL: ids
 * become the row numbers, the rest unknown). Rows are copied and
 * normalised; a zero row stays zero (it scores 0 against everything). A
 * non-finite value fails with SIMCLR_ERROR_NUMERIC naming the row (counted
 * from 0 within this call) and adds nothing. */
SimclrStatus simclr_index_add (SimclrIndex *idx, const float *rows, int64_t n,
    const SimclrIndexEntry *entries, SimclrError *err);

/* The unit row @i (dim floats) and its entry. Borrowed: valid until the
 * index changes. NULL if @i is out of range. */
const float *simclr_index_row (const SimclrIndex *idx, int64_t i);
const SimclrIndexEntry *simclr_index_entry (const SimclrIndex *idx,
    int64_t i);

/* Exact cosine top-k of @nq queries (nq, dim) (normalised here; the
 * caller's array is not changed). For query q, result j (j < k):
 * out_rows[q*k + j] is a row index and out_scores[q*k + j] its cosine
 * similarity, best first, ties by the lower row index. When k > size the
 * last k - size slots hold row -1 and score -INFINITY. Caller-owned outputs
 * of nq*k elements (@out_scores may be NULL). Errors: k < 1, dim mismatch
 * impossible by construction, an empty index (SIMCLR_ERROR_INVALID_ARGUMENT),
 * a non-finite query (SIMCLR_ERROR_NUMERIC, naming the query). */
SimclrStatus simclr_index_search (const SimclrIndex *idx, const float *queries,
    int64_t nq, int k, int64_t *out_rows, float *out_scores,
    SimclrError *err);

/* Near-duplicate groups by leader clustering: rows are visited in index
 * order; a row whose best cosine similarity to the leaders so far is at
 * least @threshold joins that leader's group (the highest similarity wins,
 * ties the earlier leader), otherwise it becomes a new leader. So every
 * member is within the threshold of its group's leader (its kept
 * representative, the earliest row of the group), and no chain of
 * neighbours can merge unlike rows, as connected components would.
 * @group (n), caller-owned: the group of each row, groups numbered 0.. in the
 * order their leaders appear; @leader_score (n, may be NULL): each row's
 * similarity to its leader (1 for a leader). *n_groups receives the count.
 * @threshold must lie in [-1, 1] (the message names it). Cost: n x groups
 * dot products. */
SimclrStatus simclr_index_group (const SimclrIndex *idx, double threshold,
    int64_t *group, float *leader_score, int64_t *n_groups, SimclrError *err);

/* Reads @npy_path and its sidecar @csv_path (NULL: npy_path + ".csv").
 * NULL with @err set (the message names the file) on any failure listed at
 * the top, an empty index included. */
SimclrIndex *simclr_index_load (const char *npy_path, const char *csv_path,
    SimclrError *err);

/* Writes the unit rows to @npy_path ('<f4', shape (n, dim)) and the entries
 * to @csv_path (NULL: npy_path + ".csv"), each atomically. */
SimclrStatus simclr_index_save (const SimclrIndex *idx, const char *npy_path,
    const char *csv_path, SimclrError *err);

#ifdef __cplusplus
}
#endif
