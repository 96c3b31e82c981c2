"""Tables and plots regenerated from the records: Table V and its formats, the sensitivity plots, ACP's
ablation tables, time and memory, the paper's numbers beside ours."""
