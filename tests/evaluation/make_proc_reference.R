#!/usr/bin/env Rscript
# Reference values for cohortlm.evaluation.stats from R's pROC, written to proc_reference.json beside this script.
#
#   apt-get update && apt-get install -y r-base-core r-cran-proc r-cran-jsonlite
#   Rscript tests/evaluation/make_proc_reference.R
#
# Each case stores its data too, so the Python tests need no R. Conventions match cohortlm:
# label 1 = case, higher score = more likely a case (direction = "<"), delta = auc(a) - auc(b).
suppressPackageStartupMessages({
  library(pROC)
  library(jsonlite)
})

set.seed(20240601)

paired_case <- function(name, y, a, b, alternative = "two.sided", conf.level = 0.95) {
  ra <- roc(y, a, levels = c(0, 1), direction = "<", quiet = TRUE)
  rb <- roc(y, b, levels = c(0, 1), direction = "<", quiet = TRUE)
  t <- roc.test(ra, rb, method = "delong", paired = TRUE, alternative = alternative,
                conf.level = conf.level)
  cia <- ci.auc(ra, method = "delong", conf.level = conf.level)
  cib <- ci.auc(rb, method = "delong", conf.level = conf.level)
  list(
    name = name, paired = TRUE, alternative = gsub("two.sided", "two-sided", alternative),
    conf_level = conf.level, y = y, a = a, b = b,
    auc_a = as.numeric(auc(ra)), auc_b = as.numeric(auc(rb)),
    var_auc_a = var(ra, method = "delong"), var_auc_b = var(rb, method = "delong"),
    cov_ab = cov(ra, rb, method = "delong"),
    z = unname(t$statistic), p_value = t$p.value,
    ci_delta = as.numeric(t$conf.int),
    ci_auc_a = c(cia[1], cia[3]), ci_auc_b = c(cib[1], cib[3]),
    n_cases = sum(y == 1), n_controls = sum(y == 0)
  )
}

unpaired_case <- function(name, ya, a, yb, b, alternative = "two.sided", conf.level = 0.95) {
  ra <- roc(ya, a, levels = c(0, 1), direction = "<", quiet = TRUE)
  rb <- roc(yb, b, levels = c(0, 1), direction = "<", quiet = TRUE)
  t <- roc.test(ra, rb, method = "delong", paired = FALSE, alternative = alternative,
                conf.level = conf.level)
  cia <- ci.auc(ra, method = "delong", conf.level = conf.level)
  cib <- ci.auc(rb, method = "delong", conf.level = conf.level)
  list(
    name = name, paired = FALSE, alternative = gsub("two.sided", "two-sided", alternative),
    conf_level = conf.level, y_a = ya, a = a, y_b = yb, b = b,
    auc_a = as.numeric(auc(ra)), auc_b = as.numeric(auc(rb)),
    var_auc_a = var(ra, method = "delong"), var_auc_b = var(rb, method = "delong"),
    z = unname(t$statistic), df = unname(t$parameter), p_value = t$p.value,
    ci_auc_a = c(cia[1], cia[3]), ci_auc_b = c(cib[1], cib[3]),
    n_cases = sum(ya == 1) + sum(yb == 1), n_controls = sum(ya == 0) + sum(yb == 0)
  )
}

cases <- list()
add <- function(x) cases[[length(cases) + 1]] <<- x

# small: 12 patients, continuous scores
y <- c(0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1)
a <- round(c(0.10, 0.22, 0.35, 0.41, 0.52, 0.18, 0.64, 0.58, 0.71, 0.39, 0.88, 0.93), 2)
b <- round(c(0.31, 0.12, 0.45, 0.27, 0.66, 0.51, 0.33, 0.49, 0.62, 0.70, 0.57, 0.81), 2)
for (alt in c("two.sided", "greater", "less")) add(paired_case(paste0("small_", alt), y, a, b, alt))

# moderate: 200 patients, correlated continuous scores
n <- 200
y <- rbinom(n, 1, 0.35)
latent <- rnorm(n) + 1.1 * y
a <- round(latent + rnorm(n, sd = 0.6), 6)
b <- round(latent + rnorm(n, sd = 1.0), 6)
for (alt in c("two.sided", "greater", "less")) add(paired_case(paste0("moderate_", alt), y, a, b, alt))
add(paired_case("moderate_conf90", y, a, b, "two.sided", 0.90))
add(paired_case("moderate_conf99", y, a, b, "greater", 0.99))

# heavy ties: scores on a 5-point scale and a 3-point scale
n <- 150
y <- rbinom(n, 1, 0.4)
a <- pmin(pmax(round(2 + 1.2 * y + rnorm(n)), 0), 4)
b <- pmin(pmax(round(1 + 0.6 * y + rnorm(n, sd = 0.8)), 0), 2)
for (alt in c("two.sided", "greater", "less")) add(paired_case(paste0("ties_", alt), y, a, b, alt))

# rare outcome: 5 cases in 300 patients
n <- 300
y <- c(rep(1, 5), rep(0, n - 5))
a <- round(rnorm(n) + 1.5 * y, 6)
b <- round(rnorm(n) + 0.8 * y, 6)
for (alt in c("two.sided", "greater")) add(paired_case(paste0("rare_", alt), y, a, b, alt))

# nearly identical models: b = a plus tiny noise on a few patients
n <- 120
y <- rbinom(n, 1, 0.5)
a <- round(rnorm(n) + y, 6)
b <- a
idx <- sample(n, 6)
b[idx] <- b[idx] + round(rnorm(6, sd = 0.3), 6)
for (alt in c("two.sided", "less")) add(paired_case(paste0("near_identical_", alt), y, a, b, alt))

# minimum sizes: two cases, two controls
add(paired_case("two_by_two", c(0, 1, 0, 1), c(0.2, 0.6, 0.4, 0.3), c(0.1, 0.2, 0.3, 0.4)))

# unpaired: different patients
ya <- rbinom(90, 1, 0.4); a <- round(rnorm(90) + 1.2 * ya, 6)
yb <- rbinom(110, 1, 0.3); b <- round(rnorm(110) + 0.5 * yb, 6)
for (alt in c("two.sided", "greater", "less")) add(unpaired_case(paste0("unpaired_", alt), ya, a, yb, b, alt))

# multiple testing: R's p.adjust
p <- c(0.01, 0.04, 0.03, 0.005, 0.20, 0.04, 0.9, 0.0001)
adjust <- list(p = p, holm = p.adjust(p, "holm"), bh = p.adjust(p, "BH"))

out <- list(
  generator = "tests/evaluation/make_proc_reference.R",
  r_version = R.version.string,
  proc_version = as.character(packageVersion("pROC")),
  cases = cases,
  p_adjust = adjust
)
path <- file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))),
                  "proc_reference.json")
write_json(out, path, digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("wrote", path, "with", length(cases), "cases\n")
