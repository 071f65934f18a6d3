# Writes tests/R/stats_reference.json: every value in it is computed by R itself by this
# script (R 4.2.2, Debian r-base-core), printed with 17 significant digits.
# Regenerate with:   cd tests/R && Rscript stats_reference.R
# The inputs are those pinned by public reference suites (pingouin tests/test_correlation.py
# and tests/test_multicomp.py, statsmodels stats/tests/test_multi.py, scipy
# stats/tests/test_morestats.py and test_resampling.py) plus cases of issue 13.
# tests/test_stats_r.py compares with R on random inputs at test time when Rscript exists;
# the values here are checked by tests/test_stats_*.py with or without R.

num <- function(v) {
  s <- ifelse(is.na(v) & !is.nan(v), "null",
       ifelse(is.nan(v), "NaN", ifelse(is.infinite(v), ifelse(v > 0, "Infinity", "-Infinity"),
                                       sprintf("%.17g", v))))
  s
}
arr <- function(v) structure(as.numeric(v), class = "arr")
j <- function(v) {
  if (inherits(v, "arr")) return(paste0("[", paste(num(unclass(v)), collapse = ", "), "]"))
  if (is.list(v)) {
    if (!is.null(names(v)))
      return(paste0("{", paste(sprintf('"%s": %s', names(v), vapply(v, j, "")), collapse = ", "), "}"))
    return(paste0("[", paste(vapply(v, j, ""), collapse = ", "), "]"))
  }
  if (is.character(v)) return(if (length(v) == 1) sprintf('"%s"', v)
                              else paste0("[", paste(sprintf('"%s"', v), collapse = ", "), "]"))
  if (is.logical(v)) return(if (v) "true" else "false")
  if (length(v) != 1) stop("wrap vectors in arr()")
  num(v)
}
ALT <- c("two-sided" = "two.sided", "greater" = "greater", "less" = "less")
per_alt <- function(f) setNames(lapply(ALT, function(a) unname(f(a))), names(ALT))
ref <- list(`_about` = paste("Computed by R", getRversion(), "with tests/R/stats_reference.R",
                             "(Rscript stats_reference.R); do not edit by hand."))

# --- correlation (pingouin's inputs) ---
x <- c(4.524991087851508, 4.420531811767872, 3.778970926584845, 12.0, 3.2553302798031223,
       4.649569372128418, 2.951786225128683, 4.591357332700219, 1.0489956831264005,
       2.9292390843995104, 2.6738018656932527, 4.31118852334745, 5.406716105951538,
       3.827585880548361, 4.510669777362404, 5.48020001172895, 5.897501992923205,
       3.2481046204119224, 3.6896719823018116, 4.659839225398035, 5.492978998780082,
       4.093017621645702, 3.702447504183336, 1.6755435235042087, 2.1236637738250335,
       5.622025310958057, 2.7972808778327707, 3.495237872288203, 2.418519025293012,
       2.184008274957259)
y <- c(7.417043974095821, 5.073260861980091, 7.2560606695752785, 7.978672340219759,
       4.480094096479011, -8.0, 4.380334906909793, 6.202861741341518, 5.004916622004917,
       5.274654700615849, 6.007153126165779, 7.362881992968021, 6.836293821056158,
       4.549735015009455, 5.7398927665282, 4.977065819368747, 7.271512763937,
       5.092800144396517, 6.305237088575375, 6.913523215921814, 5.947704426177541,
       6.606245187335942, 5.691865988238505, 4.044863387178897, 6.125520033132931,
       6.6929048900606105, 4.083471867309398, 6.451663151111775, 5.988136943566943,
       5.140502156598062)
ref$correlation <- list(
  source = "inputs: raphaelvallat/pingouin tests/test_correlation.py; values: R cor.test",
  x = arr(x), y = arr(y),
  pearson_r = unname(cor(x, y)),
  pearson_p = per_alt(function(a) cor.test(x, y, alternative = a)$p.value),
  pearson_ci95 = arr(cor.test(x, y)$conf.int),
  pearson_ci90_greater = arr(cor.test(x, y, alternative = "greater", conf.level = 0.9)$conf.int),
  spearman_rho = unname(cor.test(x, y, method = "spearman")$estimate),
  spearman_p = per_alt(function(a) cor.test(x, y, method = "spearman", alternative = a)$p.value),
  spearman_p_t = unname(cor.test(x, y, method = "spearman", exact = FALSE)$p.value),
  kendall_tau = unname(cor.test(x, y, method = "kendall")$estimate),
  kendall_p = per_alt(function(a) cor.test(x, y, method = "kendall", alternative = a)$p.value),
  kendall_p_normal = unname(cor.test(x, y, method = "kendall", exact = FALSE)$p.value),
  kendall_p_normal_cc = unname(cor.test(x, y, method = "kendall", exact = FALSE, continuity = TRUE)$p.value))

# --- exact Spearman (scipy test_resampling.py) and the cases of issue 13 ---
x6 <- c(1.76405235, 0.40015721, 0.97873798, 2.2408932, 1.86755799, -0.97727788)
y6 <- c(2.71414076, 0.2488, 0.87551913, 2.6514917, 2.01160156, 0.47699563)
y15 <- c(5, 0, 3, 6, 1, 11, 8, 9, 10, 4, 14, 12, 2, 7, 13)
ref$spearman_exact <- list(
  source = "inputs: scipy test_resampling.py test_against_spearmanr_in_R; issue 13; values: R cor.test",
  x = arr(x6), y = arr(y6),
  rho = unname(cor(x6, y6, method = "spearman")),
  p = per_alt(function(a) cor.test(x6, y6, method = "spearman", alternative = a)$p.value),
  x4 = arr(c(1, 2, 4, 3)), y4 = arr(c(2, 4, 6, 8)),
  p4_two_sided = cor.test(c(1, 2, 4, 3), c(2, 4, 6, 8), method = "spearman")$p.value,
  p5_perfect = cor.test(1:5, c(5, 6, 7, 8, 9), method = "spearman")$p.value,
  y15 = arr(y15),
  p15 = cor.test(0:14, y15, method = "spearman")$p.value,
  p15_t = cor.test(0:14, y15, method = "spearman", exact = FALSE)$p.value,
  x_ties = arr(c(1, 2, 2, 4, 5, 6, 7)), y_ties = arr(c(2, 1, 3, 5, 4, 7, 6)),
  p_ties = suppressWarnings(cor.test(c(1, 2, 2, 4, 5, 6, 7), c(2, 1, 3, 5, 4, 7, 6), method = "spearman")$p.value))

# --- Kendall, exact and with ties ---
xk <- c(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
yk <- c(3, 1, 2, 5, 4, 7, 9, 6, 10, 8)
ykt <- c(3, 1, 2, 5, 5, 7, 9, 6, 10, 8)
ref$kendall <- list(
  source = "R cor.test(method = 'kendall')",
  x = arr(xk), y = arr(yk), y_ties = arr(ykt),
  tau = unname(cor(xk, yk, method = "kendall")),
  p = per_alt(function(a) cor.test(xk, yk, method = "kendall", alternative = a)$p.value),
  tau_ties = unname(cor(xk, ykt, method = "kendall")),
  p_ties = per_alt(function(a) suppressWarnings(cor.test(xk, ykt, method = "kendall", alternative = a)$p.value)),
  p_ties_cc = suppressWarnings(cor.test(xk, ykt, method = "kendall", continuity = TRUE)$p.value))

# --- p.adjust (pingouin test_multicomp.py inputs; statsmodels test_multi.py res_multtest1) ---
pa <- c(0.52, 0.12, 0.0001, 0.03, 0.14)
pna <- c(0.52, NA, 0.10, 0.30, 0.14)
rawp <- c(5.2365677720800003e-05, 2.8140506198000000e-04, 1.4987731079600001e-02,
          2.0273268879800001e-02, 1.7709695272300000e-01, 6.4219392379499995e-01,
          6.8084594763299999e-01, 7.1626938238000004e-01, 8.3854136755300002e-01,
          9.6783382430900000e-01)
M <- c("holm", "hochberg", "hommel", "bonferroni", "BH", "BY")
adj <- function(p, n = NULL) setNames(lapply(M, function(m) arr(if (is.null(n)) p.adjust(p, m) else p.adjust(p, m, n = n))), tolower(M))
ref$p_adjust <- c(list(source = "inputs: pingouin test_multicomp.py; values: R p.adjust",
                       p = arr(pa), p_na = arr(pna), p_2d = list(arr(pa), arr(pna)),
                       p_2d_bh = arr(p.adjust(c(pa, pna), "BH")), p_2d_by = arr(p.adjust(c(pa, pna), "BY"))),
                  adj(pa),
                  list(na = adj(pna), n12 = adj(pna, 12)))
ref$multtest <- list(source = "inputs: statsmodels test_multi.py res_multtest1 rawp; values: R p.adjust",
                     rawp = arr(rawp), bh = arr(p.adjust(rawp, "BH")), by = arr(p.adjust(rawp, "BY")))

# --- Wilcoxon signed-rank (scipy test_morestats.py inputs) ---
w <- function(x, ...) suppressWarnings(wilcox.test(x, ...))
hl <- function(r) arr(c(r$estimate, r$conf.int, attr(r$conf.int, "conf.level")))
xw <- c(120, 114, 181, 188, 180, 146, 121, 191, 132, 113, 127, 112)
yw <- c(133, 143, 119, 189, 112, 199, 198, 113, 115, 121, 142, 187)
xo <- c(125, 115, 130, 140, 140, 115, 140, 125, 140, 135)
yo <- c(110, 122, 125, 120, 140, 124, 123, 137, 135, 145)
xe <- c(1.81, 0.82, 1.56, -0.48, 0.81, 1.28, -1.04, 0.23, -0.75, 0.14)
ye <- c(0.71, 0.65, -0.2, 0.85, -1.1, -0.45, -0.84, -0.24, -0.68, -0.76)
d20 <- (0:19 + 0.5) - (20:1)
ref$wilcoxon <- list(
  source = "inputs: scipy test_morestats.py TestWilcoxon; values: R wilcox.test",
  approx_x = arr(xw), approx_y = arr(yw),
  approx_p = list(nocorrect = w(xw - yw, exact = FALSE, correct = FALSE)$p.value,
                  correct = w(xw - yw, exact = FALSE, correct = TRUE)$p.value),
  approx_default_p = w(xw - yw)$p.value,
  approx_hl = hl(w(xw - yw, conf.int = TRUE)),
  tie_p = list(nocorrect = w(rep(0.1, 10), exact = FALSE, correct = FALSE)$p.value,
               correct = w(rep(0.1, 10), exact = FALSE, correct = TRUE)$p.value),
  onesided_x = arr(xo), onesided_y = arr(yo),
  onesided_p = list(less_nocorrect = w(xo - yo, exact = FALSE, alternative = "less", correct = FALSE)$p.value,
                    less_correct = w(xo - yo, exact = FALSE, alternative = "less", correct = TRUE)$p.value,
                    greater_nocorrect = w(xo - yo, exact = FALSE, alternative = "greater", correct = FALSE)$p.value,
                    greater_correct = w(xo - yo, exact = FALSE, alternative = "greater", correct = TRUE)$p.value),
  onesided_hl_greater90 = hl(w(xo - yo, alternative = "greater", conf.int = TRUE, conf.level = 0.9)),
  exact_x = arr(xe), exact_y = arr(ye),
  exact_p = per_alt(function(a) w(xe - ye, alternative = a)$p.value),
  exact_hl = hl(w(xe - ye, conf.int = TRUE)),
  exact_hl_less80 = hl(w(xe - ye, conf.int = TRUE, alternative = "less", conf.level = 0.8)),
  exact20_p = per_alt(function(a) w(d20, alternative = a)$p.value),
  issue_case = arr(c(0.3, -0.1, 0.5, 0.7, 0.2, 0.4)),
  issue_case_hl = hl(w(c(0.3, -0.1, 0.5, 0.7, 0.2, 0.4), conf.int = TRUE)))

# --- sign test = binom.test(n_positive, n_nonzero, 0.5) ---
bt <- function(k, n, ...) { r <- binom.test(k, n, 0.5, ...); arr(c(k, n, r$p.value, r$conf.int)) }
ref$sign_test <- list(
  source = "inputs: scipy test_morestats.py TestBinomTest; values: R binom.test (p, Clopper-Pearson interval)",
  cases = list(bt(3, 10), bt(484, 967), bt(7, 13), bt(6, 11), bt(0, 5), bt(5, 5)),
  greater90 = bt(7, 20, alternative = "greater", conf.level = 0.9),
  less99 = bt(7, 20, alternative = "less", conf.level = 0.99))

# --- t-tests ---
tx <- c(5.1, 4.9, 5.6, 5.8, 6.0, 5.3, 4.7)
ty <- c(4.1, 4.4, 4.0, 4.8, 5.2)
tv <- function(r) arr(c(r$statistic, r$parameter, r$p.value, r$conf.int))
constant <- function(x, mu = 0) tryCatch({t.test(x, mu = mu); FALSE},
                                         error = function(e) grepl("essentially constant", conditionMessage(e)))
ref$t_test <- list(
  source = "R t.test; vectors: t, df, p, conf.int",
  x = arr(tx), y = arr(ty),
  one = tv(t.test(tx, mu = 5)),
  one_greater90 = tv(t.test(tx, mu = 5, alternative = "greater", conf.level = 0.9)),
  welch = tv(t.test(tx, ty)),
  welch_less = tv(t.test(tx, ty, alternative = "less", mu = 1)),
  student = tv(t.test(tx, ty, var.equal = TRUE)),
  student99 = tv(t.test(tx, ty, var.equal = TRUE, conf.level = 0.99)),
  constant_sum = constant(c(0.1 + 0.2, 0.3, 0.3)),
  constant_offset = constant(1e8 + c(0, 1e-7, 3e-7, 4e-7), 1e8))

writeLines(j(ref), "stats_reference.json")
