"""Teachers: the one place every command loads a teacher from (:mod:`.loading`: a short name, a
local folder or a hub name), teachers shipped as split zips inside packages (:mod:`.packaged`:
``--teacher mpnet``), fine-tuning any BERT-family encoder for a task (:mod:`.finetune`), and for
languages with no installed BERT, a WordPiece tokenizer (:mod:`.wordpiece`) and masked-LM
pre-training from scratch (:mod:`.pretrain`)."""
