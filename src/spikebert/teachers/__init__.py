"""Teachers: fine-tuning any BERT-family encoder for a task (:mod:`.finetune`), and for languages
with no installed BERT, a WordPiece tokenizer (:mod:`.wordpiece`) and masked-LM pre-training from
scratch (:mod:`.pretrain`)."""
