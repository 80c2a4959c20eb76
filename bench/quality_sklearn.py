"""scikit-learn baseline for bench/quality.ts and bench/train.ts's text section: LogisticRegression and HistGradientBoosting per task,
fitted on the rows agentflow trained and validated on, scored on agentflow's holdout rows.

Usage: python3 bench/quality_sklearn.py '<json config>'  (bench/quality.ts writes it). The config
names the data file (csv or jsonl), the columns (numeric, categorical, or one text field with the
TF-IDF settings of agentflow's text encoder), the tasks and a JSON file with each split's row
indices. Prints one JSON line: per task, per model, the metric and the fit+predict seconds, and the
total seconds of the whole script (reading and preparing included).
"""
import json
import sys
import time

START = time.perf_counter()

import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler  # noqa: E402

# As agentflow's dataset reader has them (MISSING_NUMBER_WORDS in lib/domain/datasets/validate.ts): these spellings are a missing value, in numeric columns and labels.
MISSING = {"", "?", "NA", "N/A", "NaN", "nan", "null", "NULL"}


def read_records(cfg):
    path = cfg["data"]
    if cfg["format"] == "jsonl":
        with open(path, encoding="utf8") as f:
            return [json.loads(line) for line in f if line.strip()]
    import csv

    with open(path, encoding="utf8", newline="") as f:
        # skipinitialspace: the space after a comma goes, as agentflow's CSV trimming does.
        return list(csv.DictReader(f, skipinitialspace=True))


def is_missing(value):
    return value is None or (isinstance(value, str) and value.strip() in MISSING)


def numeric_matrix(records, columns):
    return np.array([[np.nan if is_missing(r.get(c)) else float(r[c]) for c in columns] for r in records], dtype=np.float64)


def categorical_matrix(records, columns):
    # A missing category is a level of its own ("?"), as a one-hot of the census file would have it.
    return np.array([["?" if is_missing(r.get(c)) else str(r[c]).strip() for c in columns] for r in records], dtype=object)


def label_of(task, value):
    if is_missing(value):
        return None
    if task["type"] == "binary":
        if "positive" in task:
            return 1 if str(value).strip() in task["positive"] else 0
        return 1 if value in (1, True, "1", "true", "True") else 0
    if task["type"] == "multiclass":
        return task["classes"].index(str(value).strip())
    return float(value)


def score(task, model, x_test, y_test):
    if task["type"] == "binary":
        return {"auc": roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])}
    if task["type"] == "multiclass":
        predicted = model.predict(x_test)
        return {"accuracy": accuracy_score(y_test, predicted), "macroF1": f1_score(y_test, predicted, average="macro")}
    return {"rmse": float(np.sqrt(mean_squared_error(y_test, model.predict(x_test))))}


def tabular_features(numeric, categorical, fit_rows, test_rows):
    """Both baselines' inputs, fitted on the fit rows: scaled numerics with missing indicators and a
    one-hot for the linear model; raw numerics (NaN for missing, which HGB routes itself) and ordinal
    codes marked categorical for the trees."""
    imputer = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()).fit(numeric[fit_rows])
    onehot = OneHotEncoder(handle_unknown="ignore").fit(categorical[fit_rows])
    linear = [sparse.hstack([imputer.transform(numeric[rows]), onehot.transform(categorical[rows])]).tocsr() for rows in (fit_rows, test_rows)]
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan).fit(categorical[fit_rows])
    trees = [np.concatenate([numeric[rows], ordinal.transform(categorical[rows])], axis=1) for rows in (fit_rows, test_rows)]
    mask = [False] * numeric.shape[1] + [True] * categorical.shape[1]
    return linear, trees, mask


def main():
    cfg = json.loads(sys.argv[1])
    records = read_records(cfg)
    with open(cfg["splits"], encoding="utf8") as f:
        splits = json.load(f)
    fit_rows = sorted(splits["train"] + splits["validation"])
    test_rows = sorted(splits["holdout"])

    if "text" in cfg:
        text = cfg["text"]
        low, high = text["ngramRange"]
        vectorizer = TfidfVectorizer(
            ngram_range=(low, high),
            max_features=text["vocabularySize"],
            min_df=text["minDocumentFrequency"],
            lowercase=text["lowercase"],
        )
        started = time.perf_counter()
        x_fit = vectorizer.fit_transform([records[i][text["field"]] for i in fit_rows])
        x_test = vectorizer.transform([records[i][text["field"]] for i in test_rows])
        vectorize_seconds = time.perf_counter() - started
    else:
        started = time.perf_counter()
        numeric, categorical = numeric_matrix(records, cfg["numeric"]), categorical_matrix(records, cfg["categorical"])
        linear, trees, mask = tabular_features(numeric, categorical, fit_rows, test_rows)
        vectorize_seconds = time.perf_counter() - started

    results = {}
    for task in cfg["tasks"]:
        y_fit = [label_of(task, records[i].get(task["label"])) for i in fit_rows]
        y_test = [label_of(task, records[i].get(task["label"])) for i in test_rows]
        fit_keep = [k for k, y in enumerate(y_fit) if y is not None]
        test_keep = [k for k, y in enumerate(y_test) if y is not None]
        y_fit_kept = np.array([y_fit[k] for k in fit_keep])
        y_test_kept = np.array([y_test[k] for k in test_keep])
        classifier = task["type"] != "regression"
        if "text" in cfg:
            # HGB needs dense input; a documents × vocabulary TF-IDF matrix is not one it is meant for.
            models = {"linear": (LogisticRegression(max_iter=2000), x_fit, x_test)}
        else:
            models = {
                "linear": (LogisticRegression(max_iter=2000) if classifier else Ridge(alpha=1.0), linear[0], linear[1]),
                "hgb": (
                    (HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor)(categorical_features=mask, random_state=0),
                    trees[0],
                    trees[1],
                ),
            }
        results[task["name"]] = {}
        for name, (model, x_fit_all, x_test_all) in models.items():
            started = time.perf_counter()
            model.fit(x_fit_all[fit_keep], y_fit_kept)
            metrics = score(task, model, x_test_all[test_keep], y_test_kept)
            results[task["name"]][name] = {**metrics, "seconds": time.perf_counter() - started}
    import sklearn

    print(
        json.dumps(
            {
                "sklearn": sklearn.__version__,
                "rows": {"fit": len(fit_rows), "holdout": len(test_rows)},
                "vectorizeSeconds": vectorize_seconds,
                "tasks": results,
                "totalSeconds": time.perf_counter() - START,
            }
        )
    )


if __name__ == "__main__":
    main()
