"""The record layer: every document of outputs/<run>/ typed once (documents, answers), the names of its files
(names), the request cache (cache) and RunFolder (folder), the one owner of a run folder's paths."""
