# Reference values for tests/test_stats_*.py, as pinned by public reference suites.
# Every value in stats_reference.json comes from R output that one of these suites pins:
#   pingouin   tests/R/test_correlation.R + tests/test_correlation.py  (R package `correlation`)
#   pingouin   tests/test_multicomp.py                                  (R p.adjust)
#   statsmodels statsmodels/stats/tests/test_multi.py                   (R multtest::mt.rawp2adjp)
#   scipy      scipy/stats/tests/test_morestats.py                      (R wilcox.test, binom.test)
#   scipy      scipy/stats/tests/test_resampling.py                     (R cor.test exact Spearman)
# This script is not run by the test suite (R is not installed in CI); it records the calls.
# Run it with `Rscript stats_reference.R` to re-check the pinned numbers.
options(digits = 16)

# --- correlation (pingouin, R package `correlation` 0.x; cor.test gives the same) ---
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
cor.test(x, y, method = "pearson")
cor.test(x, y, method = "pearson", alternative = "greater")
cor.test(x, y, method = "pearson", alternative = "less")
cor.test(x, y, method = "spearman", exact = FALSE)

# --- exact Spearman (scipy test_resampling.py) ---
x6 <- c(1.76405235, 0.40015721, 0.97873798, 2.2408932, 1.86755799, -0.97727788)
y6 <- c(2.71414076, 0.2488, 0.87551913, 2.6514917, 2.01160156, 0.47699563)
for (alt in c("two.sided", "greater", "less")) print(cor.test(x6, y6, method = "spearman", alternative = alt)$p.value)
cor.test(c(1, 2, 4, 3), c(2, 4, 6, 8), method = "spearman")$p.value

# --- p.adjust (pingouin test_multicomp.py) ---
p.adjust(c(0.52, 0.12, 0.0001, 0.03, 0.14), "BH")
p.adjust(c(0.52, NA, 0.10, 0.30, 0.14), "BH")
p.adjust(c(0.52, 0.12, 0.0001, 0.03, 0.14, 0.52, NA, 0.10, 0.30, 0.14), "BH")
p.adjust(c(0.52, 0.12, 0.0001, 0.03, 0.14), "BY")
p.adjust(c(0.52, NA, 0.10, 0.30, 0.14), "BY")
# statsmodels test_multi.py: multtest::mt.rawp2adjp(pval0, c("BH", "BY")) for res_multtest1

# --- Wilcoxon signed-rank (scipy test_morestats.py) ---
xw <- c(120, 114, 181, 188, 180, 146, 121, 191, 132, 113, 127, 112)
yw <- c(133, 143, 119, 189, 112, 199, 198, 113, 115, 121, 142, 187)
wilcox.test(xw, yw, paired = TRUE, exact = FALSE, correct = FALSE)$p.value
wilcox.test(xw, yw, paired = TRUE, exact = FALSE, correct = TRUE)$p.value
wilcox.test(rep(0.1, 10), exact = FALSE, correct = FALSE)$p.value
wilcox.test(rep(0.1, 10), exact = FALSE, correct = TRUE)$p.value
xo <- c(125, 115, 130, 140, 140, 115, 140, 125, 140, 135)
yo <- c(110, 122, 125, 120, 140, 124, 123, 137, 135, 145)
for (alt in c("less", "greater")) for (cc in c(FALSE, TRUE))
  print(wilcox.test(xo, yo, paired = TRUE, exact = FALSE, alternative = alt, correct = cc)$p.value)
xe <- c(1.81, 0.82, 1.56, -0.48, 0.81, 1.28, -1.04, 0.23, -0.75, 0.14)
ye <- c(0.71, 0.65, -0.2, 0.85, -1.1, -0.45, -0.84, -0.24, -0.68, -0.76)
for (alt in c("two.sided", "less", "greater")) print(wilcox.test(xe, ye, paired = TRUE, exact = TRUE, alternative = alt)$p.value)
for (alt in c("two.sided", "less", "greater")) print(wilcox.test(0:19 + 0.5, 20:1, paired = TRUE, exact = TRUE, alternative = alt)$p.value)

# --- sign test = binom.test(n_positive, n_nonzero, 0.5) (scipy test_morestats.py) ---
binom.test(3, 10, 0.5)$p.value
binom.test(484, 967, 0.5)$p.value
binom.test(7, 13, 0.5)$p.value
