# Reference values from R's mclust for emix's tests (tests/test_mclust_exact.py).
#
# Run from the repository root:  Rscript benchmarks/mclust_reference.R
# Produced the committed files with R 4.2.2 Patched (2022-11-10 r83330) and
# mclust 6.0.0 (Debian r-cran-mclust), reference BLAS/LAPACK 3.11.
#
# Writes under tests/data/:
#   mclust_banknote.csv, mclust_thyroid.csv   the two data sets of mclust
#                                             (data(banknote), data(thyroid))
#   mclust_bic_<data>.csv    mclustBIC(X) (G = 1:9, all 14 models, defaults:
#                            hc(modelName = "VVV", use = "SVD") start,
#                            emControl() tolerances), mclust's sign
#                            (higher is better), NA where mclust failed
#   mclust_hc_<data>.csv     hc(X, modelName = "VVV", use = "SVD") merge pairs
#                            (the tree mclustBIC starts from), one row per merge
#   mclust_hcvars_<data>.csv hc(X) on the raw data (use = "VARS", hc's own
#                            default), which isolates the merge criterion
#   mclust_hc_faithful30.csv, mclust_hcvars_faithful30.csv: the first 30 rows
#                            of faithful
library(mclust)
stopifnot(packageVersion("mclust") >= "6.0.0")
out <- "tests/data"
data(banknote); data(thyroid)
write.csv(banknote, file.path(out, "mclust_banknote.csv"), row.names = FALSE)
write.csv(thyroid, file.path(out, "mclust_thyroid.csv"), row.names = FALSE)
sets <- list(faithful = as.matrix(faithful),
             iris = as.matrix(iris[, 1:4]),
             banknote = as.matrix(banknote[, -1]),
             thyroid = as.matrix(thyroid[, -1]))
save_hc <- function(X, name) {
  h <- hc(X, modelName = mclust.options("hcModelName"), use = mclust.options("hcUse"))
  write.csv(data.frame(i = h[1, ], j = h[2, ]), file.path(out, sprintf("mclust_hc_%s.csv", name)),
            row.names = FALSE)
  h <- hc(X)
  write.csv(data.frame(i = h[1, ], j = h[2, ]), file.path(out, sprintf("mclust_hcvars_%s.csv", name)),
            row.names = FALSE)
}
for (name in names(sets)) {
  X <- sets[[name]]
  bic <- mclustBIC(X, G = 1:9, verbose = FALSE)
  tab <- matrix(as.numeric(bic), nrow = nrow(bic), dimnames = dimnames(bic))
  write.csv(data.frame(G = as.integer(rownames(tab)), format(tab, digits = 17), check.names = FALSE),
            file.path(out, sprintf("mclust_bic_%s.csv", name)), row.names = FALSE, quote = FALSE)
  save_hc(X, name)
}
save_hc(as.matrix(faithful[1:30, ]), "faithful30")
cat(R.version.string, "mclust", as.character(packageVersion("mclust")), "\n")
