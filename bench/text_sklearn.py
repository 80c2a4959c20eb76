"""The scikit-learn baseline of the sparse-text benchmarks (bench/textSet.ts): TfidfVectorizer fitted
on the train rows, then one LogisticRegression per task, scored by AUC on the other rows. Prints one
JSON line with its timings (ms) and AUCs."""
import json
import sys
import time

import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

config = json.loads(sys.argv[1])
with open(config["data"]) as f:
    rows = [json.loads(line) for line in f]
train, held = rows[: config["train"]], rows[config["train"] :]

start = time.perf_counter()
vectorizer = TfidfVectorizer(
    token_pattern=r"[a-z0-9]+",
    lowercase=True,
    ngram_range=tuple(config["ngramRange"]),
    max_features=config["vocabulary"],
    min_df=config["minDf"],
)
x_train = vectorizer.fit_transform([r["text"] for r in train])
x_held = vectorizer.transform([r["text"] for r in held])
vectorized = time.perf_counter()
auc = {}
for task in config["tasks"]:
    model = LogisticRegression(max_iter=1000).fit(x_train, [r[task] for r in train])
    auc[task] = roc_auc_score([r[task] for r in held], model.predict_proba(x_held)[:, 1])
done = time.perf_counter()
print(
    json.dumps(
        {
            "version": sklearn.__version__,
            "vectorizeMs": (vectorized - start) * 1000,
            "fitMs": (done - vectorized) * 1000,
            "totalMs": (done - start) * 1000,
            "auc": auc,
            "vocabulary": len(vectorizer.vocabulary_),
        }
    )
)
