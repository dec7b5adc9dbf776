/* The HCAL loss kernel for one scalar type, included by _hcal_loss_cpu.c with
 * T (float or double) and FN(name) (a type-suffixed name) defined.
 *
 * The maths is that of hcal.methods._hcal_loss (see its docstring): per-row L2 normalisation of
 * the embeddings and (perturbed) prototypes, per-sample terms at level 1 (and every level with
 * FA off), class-mean terms at the coarse levels with FA on, and each term's prototype InfoNCE
 * (cross-entropy over its level's cosine similarities / tau), averaged per level.
 * Forward: writes the m losses. Backward: recomputes the forward quantities and writes the
 * gradients of sum_k grad_losses[k] * loss_k with respect to every projection and prototype.
 */

static T FN(dot)(const T *restrict a, const T *restrict b, int64_t d)
{
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; j++)
        s += a[j] * b[j];
    return s;
}

static void FN(axpy)(T alpha, const T *restrict x, T *restrict y, int64_t d)
{
#pragma omp simd
    for (int64_t j = 0; j < d; j++)
        y[j] += alpha * x[j];
}

/* unit = x / max(|x|, eps); stores |x| and max(|x|, eps). unit may alias x. */
static void FN(normalise)(const T *x, T *unit, int64_t d, T *norm, T *denom)
{
    T nrm = (T)sqrt((double)FN(dot)(x, x, d));
    T den = nrm > (T)HCAL_EPS ? nrm : (T)HCAL_EPS;
    for (int64_t j = 0; j < d; j++)
        unit[j] = x[j] / den;
    *norm = nrm;
    *denom = den;
}

/* Gradient through x / max(|x|, eps): (g - u <u, g>) / |x|, or g / eps where the norm is clamped. */
static void FN(normalise_backward)(const T *g, const T *unit, T norm, T denom, T *out, int64_t d)
{
    T radial = norm < (T)HCAL_EPS ? 0 : FN(dot)(unit, g, d);
    for (int64_t j = 0; j < d; j++)
        out[j] = (g[j] - unit[j] * radial) / denom;
}

HCAL_CLONES static int FN(run)(const Problem *pb)
{
    const int64_t n = pb->n, d = pb->d, m = pb->m, E = pb->embeds;
    const int backward = pb->grad_losses != NULL;
    const T tau = (T)pb->tau;
    int64_t C = 0, maxC = 1;
    for (int64_t k = 0; k < m; k++) {
        C += pb->sizes[k];
        if (pb->sizes[k] > maxC)
            maxC = pb->sizes[k];
    }
    /* workspace: f, df (E n d); u, q, dq (C d); rows, drows (n d); per-row and per-class scalars */
    size_t count = (size_t)(E * n * d) * (backward ? 2 : 1) + (size_t)(C * d) * (backward ? 3 : 2)
                   + (size_t)(n * d) * (backward ? 2 : 1) + (size_t)(2 * E * n + 4 * C + 2 * maxC);
    T *ws = (T *)calloc(count, sizeof(T));
    int64_t *row_of = (int64_t *)malloc((size_t)maxC * sizeof(int64_t));
    if (!ws || !row_of) {
        free(ws);
        free(row_of);
        return -1;
    }
    T *f = ws, *cursor = ws + E * n * d;
    T *df = NULL;
    if (backward) {
        df = cursor;
        cursor += E * n * d;
    }
    T *u = cursor, *q = u + C * d;
    cursor = q + C * d;
    T *dq = NULL;
    if (backward) {
        dq = cursor;
        cursor += C * d;
    }
    T *rows = cursor;
    cursor += n * d;
    T *drows = NULL;
    if (backward) {
        drows = cursor;
        cursor += n * d;
    }
    T *fnorm = cursor, *fden = fnorm + E * n, *pnorm = fden + E * n, *pden = pnorm + C, *vnorm = pden + C,
      *vden = vnorm + C, *logits = vden + C, *counts = logits + maxC;

    for (int64_t e = 0; e < E; e++) {
        const T *z = (const T *)pb->z[e];
        for (int64_t i = 0; i < n; i++)
            FN(normalise)(z + i * d, f + (e * n + i) * d, d, fnorm + e * n + i, fden + e * n + i);
    }
    for (int64_t k = 0, c0 = 0; k < m; c0 += pb->sizes[k], k++) {
        const T *p = (const T *)pb->p[k];
        for (int64_t c = 0; c < pb->sizes[k]; c++)
            FN(normalise)(p + c * d, u + (c0 + c) * d, d, pnorm + c0 + c, pden + c0 + c);
    }
    if (pb->noise) { /* q = normalise(u + noise) */
        const T *noise = (const T *)pb->noise;
        for (int64_t j = 0; j < C * d; j++)
            q[j] = u[j] + noise[j];
        for (int64_t c = 0; c < C; c++)
            FN(normalise)(q + c * d, q + c * d, d, vnorm + c, vden + c);
    } else {
        memcpy(q, u, (size_t)(C * d) * sizeof(T));
    }

    const T *g = (const T *)pb->grad_losses;
    T *losses = (T *)pb->losses;
    for (int64_t k = 0, c0 = 0; k < m; c0 += pb->sizes[k], k++) {
        const int64_t Ck = pb->sizes[k];
        const T *fe = f + (E == 1 ? 0 : k) * n * d;
        T *dfe = backward ? df + (E == 1 ? 0 : k) * n * d : NULL;
        const T *qk = q + c0 * d;
        const int per_sample = k == 0 || !pb->fa;
        int64_t R = n;
        if (!per_sample) { /* FA: one term per class of the batch, the mean of its samples' f / tau */
            for (int64_t c = 0; c < Ck; c++)
                counts[c] = 0;
            for (int64_t i = 0; i < n; i++)
                counts[pb->labels[i * m + k]] += 1;
            R = 0;
            for (int64_t c = 0; c < Ck; c++)
                row_of[c] = counts[c] > 0 ? R++ : -1;
            memset(rows, 0, (size_t)(R * d) * sizeof(T));
            for (int64_t i = 0; i < n; i++) {
                int64_t c = pb->labels[i * m + k];
                FN(axpy)(1 / (counts[c] * tau), fe + i * d, rows + row_of[c] * d, d);
            }
            if (backward)
                memset(drows, 0, (size_t)(R * d) * sizeof(T));
        }
        const T weight = (T)1 / (T)R;
        double loss = 0;
        for (int64_t r = 0, c = -1; r < R; r++) {
            const T *row;
            T scale;
            int64_t target;
            if (per_sample) {
                row = fe + r * d, scale = 1 / tau, target = pb->labels[r * m + k];
            } else {
                while (row_of[++c] < 0) {
                }
                row = rows + r * d, scale = 1, target = c;
            }
            T top = -INFINITY;
            for (int64_t c2 = 0; c2 < Ck; c2++) {
                logits[c2] = scale * FN(dot)(row, qk + c2 * d, d);
                if (logits[c2] > top)
                    top = logits[c2];
            }
            double sum = 0;
            for (int64_t c2 = 0; c2 < Ck; c2++)
                sum += exp((double)(logits[c2] - top));
            const T lse = top + (T)log(sum);
            if (!backward) {
                loss -= (double)(logits[target] - lse);
                continue;
            }
            const T coef = g[k] * weight;
            T *drow = per_sample ? dfe + r * d : drows + r * d;
            for (int64_t c2 = 0; c2 < Ck; c2++) {
                T dl = coef * ((T)exp((double)(logits[c2] - lse)) - (c2 == target ? 1 : 0)) * scale;
                FN(axpy)(dl, row, dq + (c0 + c2) * d, d);
                FN(axpy)(dl, qk + c2 * d, drow, d);
            }
        }
        if (!backward) {
            losses[k] = (T)(loss * weight);
        } else if (!per_sample) { /* back through the class means */
            for (int64_t i = 0; i < n; i++) {
                int64_t c = pb->labels[i * m + k];
                FN(axpy)(1 / (counts[c] * tau), drows + row_of[c] * d, dfe + i * d, d);
            }
        }
    }

    if (backward) {
        for (int64_t k = 0, c0 = 0; k < m; c0 += pb->sizes[k], k++) {
            T *gp = (T *)pb->grad_p[k];
            for (int64_t c = 0; c < pb->sizes[k]; c++) {
                const int64_t i = c0 + c;
                T *grad = dq + i * d; /* through the perturbed normalisation, in place */
                if (pb->noise)
                    FN(normalise_backward)(grad, q + i * d, vnorm[i], vden[i], grad, d);
                FN(normalise_backward)(grad, u + i * d, pnorm[i], pden[i], gp + c * d, d);
            }
        }
        for (int64_t e = 0; e < E; e++) {
            T *gz = (T *)pb->grad_z[e];
            for (int64_t i = 0; i < n; i++) {
                const int64_t r = e * n + i;
                FN(normalise_backward)(df + r * d, f + r * d, fnorm[r], fden[r], gz + i * d, d);
            }
        }
    }
    free(ws);
    free(row_of);
    return 0;
}
