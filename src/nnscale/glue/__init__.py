"""The torch-side glue of `nnscale predict` and `nnscale report`: what the pure `nnscale.predict` and
`nnscale.report` packages may not do themselves — count a network with torch (`nnscale.netstats`),
read stored runs — feeding them (glue/predict.py, glue/report.py). Shared by those commands and
the study (`nnscale run`)."""
